using System.Text.Json;

namespace SharpTune.Tokenization;

internal static class TokenizerWriter
{
    public static void Save(TokenizerDefinition definition, string dir)
    {
        Directory.CreateDirectory(dir);
        WriteAtomically(Path.Combine(dir, "tokenizer.json"), definition.TokenizerJsonText);
        string config = definition.ConfigJson.ToJsonString(new JsonSerializerOptions
        {
            WriteIndented = true,
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        });
        WriteAtomically(Path.Combine(dir, "tokenizer_config.json"), config);
    }

    private static void WriteAtomically(string path, string text)
    {
        string temp = path + ".tmp";
        File.WriteAllText(temp, text);
        File.Move(temp, path, overwrite: true);
    }
}
