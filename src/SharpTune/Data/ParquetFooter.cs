namespace SharpTune.Data;

/// <summary>
/// Reads a Parquet footer (Thrift compact protocol) the way Parquet.Net 6.1 reads it, without building anything,
/// and refuses one that would send Parquet.Net past the footer's end. Parquet.Net's varint reader never stops at the
/// end of its buffer (a read past it returns 0xFF, a continuation byte, forever: hangs found by fuzzing), so every
/// read it would make must stay inside. Its reader is mirrored, not the Thrift specification: a known field is read
/// by its id with the type the format gives that id, whatever type the wire claims; an unknown field is skipped as
/// Parquet.Net skips it (a struct by its field headers only, booleans in a list as nothing). A walk that trusted the
/// wire types let through a changed field header that Parquet.Net then read to the end and beyond.
/// </summary>
internal static class ParquetFooter
{
    /// <summary>Nesting of structs and lists; Parquet's own metadata is at most about 8 deep.</summary>
    public const int MaxDepth = 32;

    /// <summary>The metadata structs that FileMetaData reaches (parquet.thrift), as "field id:type" lists. A type is a
    /// struct's name, list&lt;T&gt;, binary (strings too), bool, i8, i16, i32 (enums too), i64 or double.</summary>
    private static readonly Dictionary<string, Dictionary<short, string>> Structs = new Dictionary<string, string>
    {
        ["FileMetaData"] = "1:i32 2:list<SchemaElement> 3:i64 4:list<RowGroup> 5:list<KeyValue> 6:binary 7:list<ColumnOrder> 8:EncryptionAlgorithm 9:binary",
        ["SchemaElement"] = "1:i32 2:i32 3:i32 4:binary 5:i32 6:i32 7:i32 8:i32 9:i32 10:LogicalType",
        ["LogicalType"] = "1:Empty 2:Empty 3:Empty 4:Empty 5:DecimalType 6:Empty 7:TimeType 8:TimestampType 10:IntType 11:Empty 12:Empty 13:Empty 14:Empty 15:Empty 16:VariantType 17:GeometryType 18:GeographyType",
        ["DecimalType"] = "1:i32 2:i32",
        ["TimeType"] = "1:bool 2:TimeUnit",
        ["TimestampType"] = "1:bool 2:TimeUnit",
        ["TimeUnit"] = "1:Empty 2:Empty 3:Empty",
        ["IntType"] = "1:i8 2:bool",
        ["VariantType"] = "1:i8",
        ["GeometryType"] = "1:binary",
        ["GeographyType"] = "1:binary 2:i32",
        ["RowGroup"] = "1:list<ColumnChunk> 2:i64 3:i64 4:list<SortingColumn> 5:i64 6:i64 7:i16",
        ["ColumnChunk"] = "1:binary 2:i64 3:ColumnMetaData 4:i64 5:i32 6:i64 7:i32 8:ColumnCryptoMetaData 9:binary",
        ["ColumnMetaData"] = "1:i32 2:list<i32> 3:list<binary> 4:i32 5:i64 6:i64 7:i64 8:list<KeyValue> 9:i64 10:i64 11:i64 12:Statistics 13:list<PageEncodingStats> 14:i64 15:i32 16:SizeStatistics 17:GeospatialStatistics",
        ["Statistics"] = "1:binary 2:binary 3:i64 4:i64 5:binary 6:binary 7:bool 8:bool",
        ["PageEncodingStats"] = "1:i32 2:i32 3:i32",
        ["SizeStatistics"] = "1:i64 2:list<i64> 3:list<i64>",
        ["GeospatialStatistics"] = "1:BoundingBox 2:list<i32>",
        ["BoundingBox"] = "1:double 2:double 3:double 4:double 5:double 6:double 7:double 8:double",
        ["ColumnCryptoMetaData"] = "1:Empty 2:EncryptionWithColumnKey",
        ["EncryptionWithColumnKey"] = "1:list<binary> 2:binary",
        ["SortingColumn"] = "1:i32 2:bool 3:bool",
        ["KeyValue"] = "1:binary 2:binary",
        ["ColumnOrder"] = "1:Empty",
        ["EncryptionAlgorithm"] = "1:AesGcm 2:AesGcm",
        ["AesGcm"] = "1:binary 2:binary 3:bool",
        ["Empty"] = "",   // the format's field-less structs (StringType, MilliSeconds, TypeDefinedOrder, ...)
    }.ToDictionary(
        entry => entry.Key,
        entry => entry.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(field => field.Split(':'))
            .ToDictionary(parts => short.Parse(parts[0]), parts => parts[1]));

    public static void Check(ReadOnlySpan<byte> footer, string name)
    {
        new Reader(footer, name).Struct("FileMetaData", 0);
    }

    private ref struct Reader(ReadOnlySpan<byte> bytes, string name)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private readonly string _name = name;

        private int _position;

        private readonly int Left => _bytes.Length - _position;

        private readonly SharpTuneException Corrupt(string what) =>
            new($"{_name}: cannot read the Parquet file: its footer metadata is corrupt ({what})");

        public void Struct(string type, int depth)
        {
            if (depth > MaxDepth)
                throw Corrupt($"nested more than {MaxDepth} levels deep");
            var fields = Structs[type];
            short fieldId = 0;
            while (true)
            {
                byte header = Byte();
                if (header == 0)
                    return;   // STOP
                int delta = header >> 4;
                // Parquet.Net keeps field ids as 16-bit numbers and lets them wrap
                fieldId = delta == 0 ? (short)ZigZag(VarInt32()) : (short)(fieldId + delta);
                if (fields.TryGetValue(fieldId, out string? fieldType))
                    Value(fieldType, depth + 1);
                else
                    Skip(header & 0x0f, depth + 1);
            }
        }

        private void Value(string type, int depth)
        {
            switch (type)
            {
                case "bool":   // the field header carries the value
                    break;
                case "i8":
                    Byte();
                    break;
                case "i16" or "i32":
                    VarInt32();
                    break;
                case "i64":
                    VarInt64();
                    break;
                case "double":
                    Take(8, "a double");
                    break;
                case "binary":
                    Binary();
                    break;
                default:
                    if (type.StartsWith("list<", StringComparison.Ordinal))
                    {
                        string element = type[5..^1];
                        int count = ListHeader(depth, out _);   // Parquet.Net ignores the element type here
                        for (int i = 0; i < count; i++)
                            Value(element, depth + 1);
                    }
                    else
                    {
                        Struct(type, depth);
                    }
                    break;
            }
        }

        /// <summary>An unknown field, skipped by its wire type as Parquet.Net's SkipField does.</summary>
        private void Skip(int wireType, int depth)
        {
            switch (wireType)
            {
                case 1 or 2:   // booleans: nothing, in a struct and (as Parquet.Net skips them) in a list
                    break;
                case 3:
                    Take(1, "a byte");
                    break;
                case 4 or 5:
                    VarInt32();
                    break;
                case 6:
                    VarInt64();
                    break;
                case 7:
                    Take(8, "a double");
                    break;
                case 8:
                    Binary();
                    break;
                case 9:
                {
                    int count = ListHeader(depth, out int elementType);
                    for (int i = 0; i < count; i++)
                        Skip(elementType, depth + 1);
                    break;
                }
                case 12:
                    // Parquet.Net skips a struct by reading its field headers up to a STOP, and none of their values
                    while (Byte() is var header && header != 0)
                    {
                        if (header >> 4 == 0)
                            VarInt32();
                    }
                    break;
                default:   // sets, maps and UUIDs are not skipped by Parquet.Net either: it throws
                    throw Corrupt($"a field of Thrift type {wireType} at byte {_position}");
            }
        }

        /// <summary>A list's element count: at most one element per byte left, as every element Parquet.Net reads
        /// takes at least one.</summary>
        private int ListHeader(int depth, out int elementType)
        {
            if (depth > MaxDepth)
                throw Corrupt($"nested more than {MaxDepth} levels deep");
            byte header = Byte();
            elementType = header & 0x0f;
            int count = header >> 4;
            if (count == 15)
                count = (int)VarInt32();
            if (count < 0 || count > Left)
                throw Corrupt($"a list of {(uint)count} elements with {Left} bytes left");
            return count;
        }

        private void Binary()
        {
            int length = (int)VarInt32();
            if (length < 0 || length > Left)
                throw Corrupt($"a string or binary of {(uint)length} bytes with {Left} bytes left");
            _position += length;
        }

        /// <summary>A varint as Parquet.Net reads one into 32 bits: any number of continuation bytes, the shift
        /// wrapping at 32.</summary>
        private uint VarInt32()
        {
            uint value = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte b = Byte();
                value |= (uint)(b & 0x7f) << shift;
                if ((b & 0x80) == 0)
                    return value;
            }
        }

        private void VarInt64()
        {
            while ((Byte() & 0x80) != 0)
            {
            }
        }

        private static int ZigZag(uint n) => (int)(n >> 1) ^ -(int)(n & 1);

        private byte Byte()
        {
            if (Left < 1)
                throw Corrupt("it ends in the middle of a value");
            return _bytes[_position++];
        }

        private void Take(int count, string what)
        {
            if (count > Left)
                throw Corrupt($"{what} runs past its end");
            _position += count;
        }
    }
}
