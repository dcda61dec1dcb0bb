using System.IO.Compression;
using Encoding = System.Text.Encoding;
using System.Text.Json.Nodes;
using SharpTune.Cli;
using SharpTune.Data;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Tokenization;
using SharpTune.Training;

namespace SharpTune.Tests.Reliability;

/// <summary>The exact triggers of the mutation fuzzer's report (issue 13): each is refused with one line that names
/// the file, the key and the value, or is handled; none crashes, hangs or leaves files behind.</summary>
public class BadInputTests
{
    static SharpTuneException Refused(Action action, params string[] expected)
    {
        var e = Assert.Throws<SharpTuneException>(action);
        Assert.DoesNotContain('\n', e.Message);
        Assert.True(e.Message.Length < 600, e.Message);
        foreach (string text in expected) Assert.Contains(text, e.Message);
        return e;
    }

    static (int Code, string Out, string Err) Cli(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    static void OneLineError((int Code, string Out, string Err) r, params string[] expected)
    {
        Assert.Equal(1, r.Code);
        var lines = r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        foreach (string text in expected) Assert.Contains(text, lines[0]);
    }

    /// <summary>A copy of a fixture model folder with config.json (or another file) edited.</summary>
    static string ModelWith(string name, Action<string> edit)
    {
        string dir = Path.Combine(TestPaths.TempDir(), name);
        Directory.CreateDirectory(dir);
        foreach (var f in Directory.GetFiles(TestPaths.Model(name))) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        edit(dir);
        return dir;
    }

    static void EditJson(string path, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    // ---- config.json, generation_config.json, shard index

    [Fact]
    public void Fractional_intermediate_size_names_key_and_value()
    {
        string dir = ModelWith("llama", d => EditJson(Path.Combine(d, "config.json"), j => j["intermediate_size"] = 160.5));
        Refused(() => ModelConfig.Load(dir), "config.json", "\"intermediate_size\"", "whole number", "160.5");
    }

    [Fact]
    public void Token_id_beyond_int32_is_refused()
    {
        string dir = ModelWith("llama", d => EditJson(Path.Combine(d, "config.json"), j => j["bos_token_id"] = 4294967296L));
        Refused(() => ModelConfig.Load(dir), "\"bos_token_id\"", "4294967296");
    }

    [Fact]
    public void Generation_config_with_a_text_eos_id_is_refused()
    {
        string dir = ModelWith("llama", d => File.WriteAllText(Path.Combine(d, "generation_config.json"), """{"eos_token_id": [1, "a"]}"""));
        Refused(() => GenerationDefaults.Load(dir), "generation_config.json", "\"eos_token_id[1]\"", "'a'");
    }

    [Fact]
    public void Duplicate_weight_map_keys_are_refused()
    {
        string dir = ModelWith("llama", d => File.WriteAllText(Path.Combine(d, "model.safetensors.index.json"),
            """{"weight_map": {"lm_head.weight": "model.safetensors", "lm_head.weight": "model.safetensors"}}"""));
        Refused(() => ModelFolder.Open(dir).Dispose(), "model.safetensors.index.json", "lm_head.weight");
    }

    [Fact]
    public void Json_syntax_errors_are_one_line_without_the_file_text()
    {
        string dir = ModelWith("llama", d => File.WriteAllText(Path.Combine(d, "config.json"), "{\n\"a\": 1,\n" + string.Concat(Enumerable.Repeat("\"line\n", 1000))));
        var e = Refused(() => ModelConfig.Load(dir), "config.json", "invalid JSON");
        Assert.DoesNotContain("\"line", e.Message);
    }

    [Fact]
    public void Json_nested_deeper_than_the_limit_is_refused()
    {
        string dir = ModelWith("llama", d => File.WriteAllText(Path.Combine(d, "config.json"), "{\"a\":" + new string('[', 100_000) + new string(']', 100_000) + "}"));
        Refused(() => ModelConfig.Load(dir), "config.json", "invalid JSON");
    }

    [Fact]
    public void Config_that_is_a_folder_or_a_symlink_loop_names_the_path()
    {
        string folder = ModelWith("llama", d => { File.Delete(Path.Combine(d, "config.json")); Directory.CreateDirectory(Path.Combine(d, "config.json")); });
        Refused(() => ModelConfig.Load(folder), Path.Combine(folder, "config.json"), "folder");
        string loop = ModelWith("llama", d => { File.Delete(Path.Combine(d, "config.json")); File.CreateSymbolicLink(Path.Combine(d, "config.json"), Path.Combine(d, "config.json")); });
        OneLineError(Cli("info", "--model", loop), Path.Combine(loop, "config.json"));
    }

    // ---- tokenizer files

    static string TokenizerWith(Action<string> edit)
    {
        string dir = TestPaths.TempDir();
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Fixtures, "tokenizer", "trained", "tiny_bos")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        edit(dir);
        return dir;
    }

    [Fact]
    public void Tokenizer_decoder_as_a_number_is_refused()
    {
        string dir = TokenizerWith(d => EditJson(Path.Combine(d, "tokenizer.json"), j => j["decoder"] = 4294967296L));
        Refused(() => Tokenizer.Load(dir), "tokenizer.json", "\"decoder\"", "object", "4294967296");
    }

    [Fact]
    public void Tokenizer_config_with_a_duplicate_key_is_refused()
    {
        string dir = TokenizerWith(d =>
        {
            string path = Path.Combine(d, "tokenizer_config.json");
            string text = File.ReadAllText(path).TrimEnd().TrimEnd('}');
            File.WriteAllText(path, text + ",\"eos_token\": \"a\", \"eos_token\": \"b\"}");
        });
        Refused(() => Tokenizer.Load(dir), "tokenizer_config.json", "eos_token");
    }

    // ---- safetensors headers

    static SharpTuneException HeaderRefused(string header, int dataBytes, params string[] expected) =>
        Refused(() => SafetensorsFile.ReadHeader(new MemoryStream(FuzzCorpusTests.SafetensorsBytes(header, dataBytes)), "x.safetensors"), expected);

    [Fact]
    public void Safetensors_duplicate_names_are_refused() =>
        HeaderRefused("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "x.safetensors", "duplicate key 'a'");

    [Fact]
    public void Safetensors_fractional_and_oversized_numbers_are_refused()
    {
        HeaderRefused("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}}""", 4, "data_offsets[0]", "0.5");
        HeaderRefused("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}}""", 4, "data_offsets[1]", "99999999999999999999");
        HeaderRefused("""{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", 4, "shape[0]", "1.5");
        HeaderRefused("""{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, "negative");
    }

    [Fact]
    public void Safetensors_shape_whose_size_overflows_is_refused() =>
        HeaderRefused("""{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", 4, "overflows");

    [Fact]
    public void Safetensors_unknown_dtype_gaps_and_extra_bytes_are_refused()
    {
        HeaderRefused("""{"a":{"dtype":"F8_E4M3X","shape":[1],"data_offsets":[0,1]}}""", 1, "F8_E4M3X", "not supported");
        HeaderRefused("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "unused");
        HeaderRefused("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 12, "extra bytes");
    }

    [Fact]
    public void Safetensors_header_length_over_100MB_is_refused()
    {
        var bytes = new byte[16];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), 100_000_001L);
        Refused(() => SafetensorsFile.ReadHeader(new MemoryStream(bytes), "x.safetensors"), "100000000");
    }

    // ---- adapter_config.json

    static string AdapterWith(Action<JsonObject> edit)
    {
        string dir = TestPaths.TempDir();
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.Model("qwen2"), "peft_adapter")))
            File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        EditJson(Path.Combine(dir, "adapter_config.json"), edit);
        return dir;
    }

    [Fact]
    public void Adapter_config_with_wrong_types_is_refused()
    {
        using var folder = ModelFolder.Open(TestPaths.Model("qwen2"));
        using var model = folder.LoadModel(TestPaths.Cpu, TorchSharp.torch.float32);
        Refused(() => LoraAdapter.Load(AdapterWith(j => j["bias"] = 0), model), "adapter_config.json", "\"bias\"", "string", "0");
        Refused(() => LoraAdapter.Load(AdapterWith(j => j["target_modules"] = new JsonArray((JsonNode?)null)), model), "\"target_modules[0]\"", "null");
        Refused(() => LoraAdapter.Load(AdapterWith(j => j["lora_alpha"] = "x"), model), "\"lora_alpha\"");
    }

    // ---- datasets

    static IEnumerable<Example> Read(string path) => DatasetReader.ReadExamples(new DatasetSource(path));

    [Fact]
    public void Corrupt_jsonl_gz_names_the_file()
    {
        string path = Path.Combine(TestPaths.TempDir(), "data.jsonl.gz");
        using (var gz = new GZipStream(File.Create(path), CompressionLevel.Fastest))
        {
            var line = Encoding.UTF8.GetBytes("{\"question\": \"q\", \"answer\": \"a\"}\n");
            for (int i = 0; i < 2000; i++) gz.Write(line);
        }
        var bytes = File.ReadAllBytes(path);
        for (int i = 40; i < bytes.Length - 20; i += 7) bytes[i] ^= 0x5A;
        File.WriteAllBytes(path, bytes);
        Refused(() => Read(path).ToList(), "data.jsonl.gz");
    }

    [Fact]
    public void Parquet_footer_length_of_2_31_minus_1_is_refused()
    {
        string path = Path.Combine(TestPaths.TempDir(), "chat.parquet");
        var bytes = File.ReadAllBytes(Path.Combine(TestPaths.Fixtures, "Data", "chat.parquet"));
        BitConverter.TryWriteBytes(bytes.AsSpan(bytes.Length - 8, 4), int.MaxValue);
        File.WriteAllBytes(path, bytes);
        Refused(() => Read(path).ToList(), "chat.parquet", "footer", "2147483647");
    }

    [Fact]
    public void Lone_surrogate_in_a_json_dataset_names_the_row()
    {
        string path = Path.Combine(TestPaths.TempDir(), "data.json");
        File.WriteAllText(path, """[{"question": "ok", "answer": "fine"}, {"question": "bad \ud800 text", "answer": "a"}]""");
        Refused(() => Read(path).ToList(), "data.json", "surrogate");
    }

    // ---- recipes and chat templates

    [Fact]
    public void Recipe_nested_100000_deep_is_refused_without_a_stack_overflow()
    {
        string text = "learning_rate: " + new string('[', 100_000) + new string(']', 100_000) + "\n";
        Refused(() => TrainOptions.FromYamlText(text, "deep.yaml"), "deep.yaml", "nested");
        string block = string.Concat(Enumerable.Range(0, 5000).Select(i => new string(' ', i) + "a:\n"));
        Refused(() => TrainOptions.FromYamlText(block, "block.yaml"), "block.yaml");
    }

    [Fact]
    public void Template_nested_thousands_deep_is_a_syntax_error()
    {
        Refused(() => ChatTemplate.Parse("{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}"), "nested");
        Refused(() => ChatTemplate.Parse("{{ " + string.Concat(Enumerable.Repeat("not ", 5000)) + "1 }}"), "nested");
        Refused(() => ChatTemplate.Parse(string.Concat(Enumerable.Repeat("{% if x %}", 5000))), "nested");
    }

    [Fact]
    public void Self_recursive_macro_stops_at_the_recursion_limit()
    {
        var template = ChatTemplate.Parse("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
        Refused(() => template.Render(new Dictionary<string, object?>()), "recursion");
    }

    [Fact]
    public void Huge_string_repetition_fails_before_allocating()
    {
        Refused(() => ChatTemplate.Parse("{{ \"a\" * 1000000000 }}").Render(new Dictionary<string, object?>()), "limit");
        Refused(() => ChatTemplate.Parse("{{ \"a\".center(2000000000) }}").Render(new Dictionary<string, object?>()), "limit");
        // Growth by doubling is stopped by the output limit.
        Refused(() => ChatTemplate.Parse("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}")
            .Render(new Dictionary<string, object?>()), "limit");
    }

    // ---- generation

    [Fact]
    public void Prompt_longer_than_the_context_is_refused()
    {
        using var folder = ModelFolder.Open(TestPaths.Model("llama"));
        using var model = folder.LoadModel(TestPaths.Cpu, TorchSharp.torch.float32);
        int context = model.Config.MaxPositionEmbeddings;
        var prompt = Enumerable.Range(0, 100_000).Select(i => i % 300 + 3).ToArray();
        Refused(() => new TokenGenerator(model).Generate([prompt], new GenerationOptions(4)), "100000 tokens", $"{context}");
        Refused(() => new TokenGenerator(model).Generate([[1, 5000]], new GenerationOptions(4)), "5000", "vocabulary");
    }

    [Fact]
    public void Non_finite_sampling_settings_are_refused()
    {
        Refused(() => new SamplingOptions(Temperature: double.NaN).Validate(), "--temperature");
        Refused(() => new SamplingOptions(TopP: double.NaN).Validate(), "--top-p");
        Refused(() => new SamplingOptions(RepetitionPenalty: double.PositiveInfinity).Validate(), "--repetition-penalty");
    }
}
