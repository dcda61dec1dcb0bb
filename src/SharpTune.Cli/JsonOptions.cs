using System.Text.Encodings.Web;
using System.Text.Json;

namespace SharpTune.Cli;

static class JsonOptions
{
    /// <summary>snake_case keys (prompt_ids, output_ids) as Python scripts expect; non-ASCII text kept readable.</summary>
    public static readonly JsonSerializerOptions Indented = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
