using System.Text;
using SharpTune.Data;

namespace SharpTune.Tests.Data;

/// <summary>A temporary folder deleted after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("sharptune-data-").FullName;

    public string File(string relative, string text)
    {
        string full = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllText(full, text, new UTF8Encoding(false));
        return full;
    }

    public string Bytes(string relative, byte[] bytes)
    {
        string full = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
        System.IO.File.WriteAllBytes(full, bytes);
        return full;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A character-level tokenizer for tests: each UTF-16 code unit is its own id; the text "&lt;eos&gt;"
/// is the EOS token, as special-token text in a chat template would be.</summary>
internal static class CharTokenizer
{
    public const int Bos = 100_001;
    public const int Eos = 100_002;
    public const string EosText = "<eos>";

    public static int[] Encode(string text)
    {
        var ids = new List<int>();
        string[] parts = text.Split(EosText);
        for (int i = 0; i < parts.Length; i++)
        {
            if (i > 0)
                ids.Add(Eos);
            foreach (char c in parts[i])
                ids.Add(c);
        }
        return ids.ToArray();
    }

    public static string Decode(IEnumerable<int> ids) =>
        string.Concat(ids.Select(id => id switch { Bos => "<bos>", Eos => EosText, _ => ((char)id).ToString() }));

    public static TokenizerSpec Spec(bool bos = true) =>
        new(Encode, Eos, "char-tokenizer-v1") { BosId = bos ? Bos : null };
}

internal static class Fixtures
{
    public static string Data(string name) => System.IO.Path.Combine(AppContext.BaseDirectory, "Fixtures", "Data", name);
}
