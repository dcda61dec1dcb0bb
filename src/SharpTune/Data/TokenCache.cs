using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace SharpTune.Data;

/// <summary>
/// Tokenized examples saved to a binary file so that a dataset is tokenized once. The file is named after a key
/// that hashes everything the tokens depend on (data source, formats, tokenizer, maximum length, loss mode);
/// the key is stored in the file too and checked on load. Writes go to a temporary file that is then renamed.
/// </summary>
public static class TokenCache
{
    private static readonly byte[] Magic = "SHARPTUNE-TOKENS"u8.ToArray();
    private const int Version = 1;
    private const int EndMarker = 0x21444E45; // "END!"

    /// <summary>A SHA-256 key over the parts (each length-prefixed, so ["ab","c"] and ["a","bc"] differ).</summary>
    public static string Key(params IEnumerable<string> parts)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (string part in parts)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(part);
            hash.AppendData(BitConverter.GetBytes(bytes.Length));
            hash.AppendData(bytes);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>SHA-256 of a file's contents, e.g. tokenizer.json for <see cref="TokenizerSpec.Identity"/>.</summary>
    public static string HashFile(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public static string PathFor(string directory, string key) => Path.Combine(directory, $"{key[..32]}.tokens");

    /// <summary>The cached examples for <paramref name="key"/>, or built by <paramref name="build"/> and saved.</summary>
    public static (List<TokenizedExample> Examples, TokenizationReport Report, bool FromCache) GetOrCreate(
        string directory, string key, Func<(List<TokenizedExample>, TokenizationReport)> build)
    {
        string path = PathFor(directory, key);
        if (TryLoad(path, key, out var cached, out var cachedReport))
            return (cached, cachedReport, true);
        var (examples, report) = build();
        Save(path, key, examples, report);
        return (examples, report, false);
    }

    /// <summary>Loads a cache file; false when it is missing, has another key, or is damaged.</summary>
    public static bool TryLoad(string path, string key, out List<TokenizedExample> examples, out TokenizationReport report)
    {
        examples = [];
        report = TokenizationReport.Empty;
        if (!File.Exists(path))
            return false;
        try
        {
            using var reader = new BinaryReader(new BufferedStream(File.OpenRead(path), 1 << 16));
            if (!reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic) || reader.ReadInt32() != Version || reader.ReadString() != key)
                return false;
            report = new TokenizationReport(reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt32(), reader.ReadInt64(), reader.ReadInt64())
            {
                BadRows = reader.ReadInt32(),
            };
            int count = reader.ReadInt32();
            if (count < 0)
                return false;
            var loaded = new List<TokenizedExample>();
            for (int i = 0; i < count; i++)
            {
                int length = reader.ReadInt32();
                if (length < 0 || length > reader.BaseStream.Length)
                    return false;
                var ids = new int[length];
                reader.BaseStream.ReadExactly(MemoryMarshal.AsBytes(ids.AsSpan()));
                var mask = reader.ReadBytes((length + 7) / 8);
                if (mask.Length != (length + 7) / 8)
                    return false;
                var labels = new int[length];
                for (int t = 0; t < length; t++)
                    labels[t] = (mask[t >> 3] & (1 << (t & 7))) != 0 ? ids[t] : TokenizedExample.IgnoreIndex;
                loaded.Add(new TokenizedExample(ids, labels));
            }
            if (reader.ReadInt32() != EndMarker)
                return false;
            examples = loaded;
            return true;
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or InvalidDataException or FormatException)
        {
            return false;
        }
    }

    /// <summary>Writes the cache file atomically. Labels must be -100 or the token itself (as the tokenizer makes them).</summary>
    public static void Save(string path, string key, IReadOnlyList<TokenizedExample> examples, TokenizationReport report)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("the token cache format is little-endian");
        AtomicFile.Write(path, stream =>
        {
            using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
            writer.Write(Magic);
            writer.Write(Version);
            writer.Write(key);
            writer.Write(report.Examples);
            writer.Write(report.Truncated);
            writer.Write(report.Dropped);
            writer.Write(report.Tokens);
            writer.Write(report.LabelTokens);
            writer.Write(report.BadRows);
            writer.Write(examples.Count);
            foreach (var example in examples)
            {
                writer.Write(example.Length);
                writer.Write(MemoryMarshal.AsBytes(example.InputIds.AsSpan()));
                writer.Write(LabelMask(example));
            }
            writer.Write(EndMarker);
        });
    }

    private static byte[] LabelMask(TokenizedExample example)
    {
        var mask = new byte[(example.Length + 7) / 8];
        for (int t = 0; t < example.Length; t++)
        {
            int label = example.Labels[t];
            if (label == example.InputIds[t])
                mask[t >> 3] |= (byte)(1 << (t & 7));
            else if (label != TokenizedExample.IgnoreIndex)
                throw new InvalidOperationException($"label {label} at position {t} is neither -100 nor the token {example.InputIds[t]}; the cache cannot store it");
        }
        return mask;
    }
}
