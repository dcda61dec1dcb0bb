namespace SharpTune.Data;

/// <summary>
/// Walks a Parquet footer (Thrift compact protocol) without building anything, and refuses one that Parquet.Net
/// could not read safely: a length or element count beyond the bytes left, a varint running off the end, an unknown
/// wire type, or nesting deeper than <see cref="MaxDepth"/>. Parquet.Net reads such footers past their end, where
/// its varint reader never stops (a hang found by fuzzing), or recurses without limit.
/// </summary>
internal static class ParquetFooter
{
    /// <summary>Nesting of structs, lists and maps; Parquet's own metadata is at most about 6 deep (plus nested schema
    /// logical types).</summary>
    public const int MaxDepth = 32;

    public static void Check(ReadOnlySpan<byte> footer, string name)
    {
        new Walker(footer, name).SkipStruct(0);
    }

    private ref struct Walker(ReadOnlySpan<byte> bytes, string name)
    {
        private readonly ReadOnlySpan<byte> _bytes = bytes;
        private readonly string _name = name;

        private int _position;

        private readonly int Left => _bytes.Length - _position;

        public readonly SharpTuneException Corrupt(string what) =>
            new($"{_name}: cannot read the Parquet file: its footer metadata is corrupt ({what})");

        public void SkipStruct(int depth)
        {
            if (depth > MaxDepth)
                throw Corrupt($"nested more than {MaxDepth} levels deep");
            while (true)
            {
                byte header = Byte();
                int type = header & 0x0f;
                if (type == 0)
                    return;   // STOP
                if (header >> 4 == 0)
                    VarInt();   // a field id that is not a small delta follows as a zigzag varint
                SkipValue(type, depth, inStruct: true);
            }
        }

        private void SkipValue(int type, int depth, bool inStruct)
        {
            switch (type)
            {
                case 1 or 2:   // booleans: in a struct the type carries the value, in a list one byte each
                    if (!inStruct)
                        Byte();
                    break;
                case 3:
                    Byte();
                    break;
                case 4 or 5 or 6:
                    VarInt();
                    break;
                case 7:
                    Take(8, "a double");
                    break;
                case 8:
                    Take(Length("a string"), "a string");
                    break;
                case 9 or 10:
                    SkipList(depth);
                    break;
                case 11:
                    SkipMap(depth);
                    break;
                case 12:
                    SkipStruct(depth + 1);
                    break;
                case 13:
                    Take(16, "a UUID");
                    break;
                default:
                    throw Corrupt($"unknown Thrift type {type} at byte {_position - 1}");
            }
        }

        private void SkipList(int depth)
        {
            if (depth + 1 > MaxDepth)
                throw Corrupt($"nested more than {MaxDepth} levels deep");
            byte header = Byte();
            int elementType = header & 0x0f;
            long count = header >> 4;
            if (count == 15)
                count = Length("a list");
            // every element takes at least one byte
            if (count > Left)
                throw Corrupt($"a list of {count} elements with {Left} bytes left");
            for (long i = 0; i < count; i++)
                SkipValue(elementType, depth + 1, inStruct: false);
        }

        private void SkipMap(int depth)
        {
            if (depth + 1 > MaxDepth)
                throw Corrupt($"nested more than {MaxDepth} levels deep");
            long count = Length("a map");
            if (count == 0)
                return;
            byte types = Byte();
            if (count > Left / 2)
                throw Corrupt($"a map of {count} entries with {Left} bytes left");
            for (long i = 0; i < count; i++)
            {
                SkipValue(types >> 4, depth + 1, inStruct: false);
                SkipValue(types & 0x0f, depth + 1, inStruct: false);
            }
        }

        /// <summary>A length or count: an unsigned varint that must fit in the bytes left.</summary>
        private long Length(string what)
        {
            ulong value = VarInt();
            if (value > (ulong)Left)
                throw Corrupt($"{what} of {value} bytes or elements with {Left} bytes left");
            return (long)value;
        }

        private ulong VarInt()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                byte b = Byte();
                value |= (ulong)(b & 0x7f) << shift;
                if ((b & 0x80) == 0)
                    return value;
            }
            throw Corrupt($"a varint longer than 10 bytes at byte {_position}");
        }

        private byte Byte()
        {
            if (Left < 1)
                throw Corrupt("it ends in the middle of a value");
            return _bytes[_position++];
        }

        private void Take(long count, string what)
        {
            if (count > Left)
                throw Corrupt($"{what} runs past its end");
            _position += (int)count;
        }
    }
}
