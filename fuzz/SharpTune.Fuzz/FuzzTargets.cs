using Encoding = System.Text.Encoding;
using SharpTune.Data;
using SharpTune.Models;
using SharpTune.Tokenization;
using SharpTune.Training;

namespace SharpTune.Fuzz;

/// <summary>
/// One entry point per parser that takes untrusted input. Each must return normally or throw a
/// <see cref="SharpTuneException"/> (a user-facing error); any other exception, a stack overflow or a hang is a
/// finding. The same functions replay the kept corpora in tests/SharpTune.Tests/Reliability.
/// </summary>
public static class FuzzTargets
{
    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        ["safetensors"] = Safetensors,
        ["json"] = ConfigJson,
        ["jinja"] = Jinja,
        ["csv"] = Csv,
        ["jsonl"] = JsonLines,
        ["parquet"] = Parquet,
        ["yaml"] = Yaml,
    };

    /// <summary>Runs a target and tells a user-facing error (fine) from a finding (rethrown).</summary>
    public static void Run(string target, byte[] input)
    {
        try
        {
            All[target](input);
        }
        catch (SharpTuneException e) when (!e.Message.Contains('\n') && !e.Message.Contains('\r'))
        {
            // a clean one-line error: the expected outcome for bad input
        }
    }

    /// <summary>A safetensors file: the 8-byte length, the JSON header and its validation against the data size.</summary>
    public static void Safetensors(byte[] input) => SafetensorsFile.ReadHeader(new MemoryStream(input, writable: false), "fuzz.safetensors");

    /// <summary>config.json, tokenizer.json or tokenizer_config.json, chosen by the first byte; a tokenizer that
    /// loads also encodes and decodes a short text.</summary>
    public static void ConfigJson(byte[] input)
    {
        if (input.Length == 0) return;
        var body = input.AsMemory(1);
        switch (input[0] % 3)
        {
            case 0:
                ModelConfig.Parse(JsonFile.Parse(body, "config.json"));
                break;
            case 1:
                var text = Encoding.UTF8.GetString(body.Span);
                var config = TokenizerLoader.ReadConfig([], [], null, "tokenizer_config.json");
                var tokenizer = new Tokenizer(TokenizerLoader.Parse(text, "tokenizer.json", config, []));
                var ids = tokenizer.Encode("Hello wörld 123 <think>ok</think> 🙂");
                tokenizer.Decode(ids);
                break;
            default:
                JsonFile.Parse(body, "tokenizer_config.json");
                var obj = System.Text.Json.Nodes.JsonNode.Parse(body.Span) as System.Text.Json.Nodes.JsonObject ?? [];
                TokenizerLoader.ReadConfig(obj, [], null, "tokenizer_config.json");
                break;
        }
    }

    /// <summary>A chat template: parsed, then rendered with a short conversation. (Made per call: instrumented
    /// code must not run before the fuzzer has set up its coverage map.)</summary>
    public static void Jinja(byte[] input)
    {
        var template = ChatTemplate.Parse(Encoding.UTF8.GetString(input));
        ChatMessage[] conversation =
        [
            new("system", "You are helpful."),
            new("user", "What is 2 + 2?"),
            new("assistant", "4") { ReasoningContent = "2 + 2 = 4" },
            new("user", "And 3 + 3?"),
        ];
        template.RenderChat(conversation, addGenerationPrompt: true, "<s>", "</s>");
    }

    public static void Csv(byte[] input) => ReadRecords(input, "fuzz.csv", input.Length > 0 && input[0] == '\t' ? DataFileKind.Tsv : DataFileKind.Csv);

    public static void JsonLines(byte[] input) => ReadRecords(input, "fuzz.jsonl", DataFileKind.Json);

    public static void Parquet(byte[] input) => ReadRecords(input, "fuzz.parquet", DataFileKind.Parquet);

    static void ReadRecords(byte[] input, string name, DataFileKind kind)
    {
        var file = new DataFile(name, kind, () => new NamedReadStream(new MemoryStream(input, writable: false), name), name);
        var records = kind switch
        {
            DataFileKind.Parquet => ParquetRecords.Read(file),
            DataFileKind.Json => JsonRecords.Read(file, maxRowBytes: 1 << 20),
            _ => CsvRecords.Read(file, maxRowBytes: 1 << 20),
        };
        int n = 0;
        foreach (var record in records)
        {
            try
            {
                var values = record.Parse();
                var row = new DatasetRow(record.Location, n, values);
                ExampleFormat.Resolve(null, null, row).ToExample(row);
            }
            catch (BadRowException)
            {
                // a bad row: reported (or skipped) by the reader's caller
            }
            if (++n == 1000) break;
        }
    }

    /// <summary>A training recipe, parsed and validated.</summary>
    public static void Yaml(byte[] input) => TrainOptions.FromYamlText(Encoding.UTF8.GetString(input), "fuzz.yaml").Validate();
}
