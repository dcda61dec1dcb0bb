using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune;

/// <summary>Reads a JSON object file with user-facing errors: a missing file, invalid JSON or a duplicate key
/// becomes a <see cref="SharpTuneException"/> naming the file.</summary>
public static class JsonFile
{
    public static JsonObject ReadObject(string path)
    {
        if (!File.Exists(path)) throw new SharpTuneException($"{path}: not found");
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new SharpTuneException($"{path}: expected a JSON object");
            _ = json.Count;   // builds the key table now, so that a duplicate key fails here rather than on first use
            return json;
        }
        catch (Exception e) when (e is JsonException or ArgumentException)
        {
            throw new SharpTuneException($"{path}: invalid JSON ({e.Message})");
        }
    }
}
