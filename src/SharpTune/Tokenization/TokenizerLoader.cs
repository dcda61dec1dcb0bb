using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

/// <summary>Reads tokenizer.json / tokenizer_config.json / special_tokens_map.json into a
/// <see cref="TokenizerDefinition"/>, rejecting what this implementation does not support with an error that names
/// the file and the feature.</summary>
internal static class TokenizerLoader
{
    public static TokenizerDefinition Load(string modelDir)
    {
        if (!Directory.Exists(modelDir))
        {
            throw new SharpTuneException($"{modelDir}: tokenizer folder not found");
        }
        string tokenizerPath = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(tokenizerPath))
        {
            throw new SharpTuneException(
                $"{tokenizerPath}: not found; a Hugging Face tokenizer.json (fast tokenizer) is required");
        }
        string tokenizerText = File.ReadAllText(tokenizerPath);
        var configJson = ReadObject(Path.Combine(modelDir, "tokenizer_config.json")) ?? [];
        var specialMap = ReadObject(Path.Combine(modelDir, "special_tokens_map.json")) ?? [];
        string? jinjaTemplate = File.Exists(Path.Combine(modelDir, "chat_template.jinja"))
            ? File.ReadAllText(Path.Combine(modelDir, "chat_template.jinja"))
            : null;
        var config = ReadConfig(configJson, specialMap, jinjaTemplate, Path.Combine(modelDir, "tokenizer_config.json"));
        return Parse(tokenizerText, tokenizerPath, config, configJson);
    }

    public static TokenizerDefinition Parse(string tokenizerText, string file, TokenizerConfig config,
        JsonObject configJson)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(tokenizerText);
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{file}: not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new SharpTuneException($"{file}: expected a JSON object at the top level");
            }
            var model = ReadModel(root, file);
            var addedTokens = ReadAddedTokens(root, file);
            bool nfc = ReadNormalizer(Optional(root, "normalizer"), file, "normalizer");
            var preTokenizer = ReadPreTokenizer(root, file);
            CheckDecoder(Optional(root, "decoder"), file, "decoder");
            var tokenIds = new Dictionary<string, int>();
            foreach (var token in addedTokens)
            {
                tokenIds[token.Content] = token.Id;
            }
            var postProcessor = ReadPostProcessor(Optional(root, "post_processor"), file, "post_processor");
            postProcessor = ApplyConfigSpecialTokens(postProcessor, config, tokenIds, model);
            return new TokenizerDefinition(model, addedTokens, nfc, preTokenizer, postProcessor, config, tokenizerText,
                configJson);
        }
    }

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new SharpTuneException($"{path}: expected a JSON object at the top level");
        }
        catch (JsonException e)
        {
            throw new SharpTuneException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    internal static TokenizerConfig ReadConfig(JsonObject config, JsonObject specialMap, string? jinjaTemplate,
        string file)
    {
        string? Token(string key) => TokenContent(config[key], file, key) ?? TokenContent(specialMap[key], file, key);
        bool? Flag(string key) => config[key] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out bool b) => b,
            _ => throw new SharpTuneException($"{file}: \"{key}\" must be true or false"),
        };
        return new TokenizerConfig(Token("bos_token"), Token("eos_token"), Token("pad_token"), Flag("add_bos_token"),
            Flag("add_eos_token"), jinjaTemplate ?? ChatTemplate(config["chat_template"], file));
    }

    /// <summary>A special token entry: a string, null, or an object with "content".</summary>
    private static string? TokenContent(JsonNode? node, string file, string key) => node switch
    {
        null => null,
        JsonValue v when v.TryGetValue(out string? s) => s,
        JsonObject o when o["content"] is JsonValue c && c.TryGetValue(out string? s) => s,
        _ => throw new SharpTuneException($"{file}: \"{key}\" must be a string, null or an object with \"content\""),
    };

    private static string? ChatTemplate(JsonNode? node, string file)
    {
        switch (node)
        {
            case null:
                return null;
            case JsonValue v when v.TryGetValue(out string? s):
                return s;
            case JsonArray named:
                // Several named templates: transformers uses the one named "default".
                foreach (var entry in named)
                {
                    if (entry?["name"]?.GetValue<string>() == "default")
                    {
                        return entry["template"]?.GetValue<string>();
                    }
                }
                return null;
            default:
                throw new SharpTuneException($"{file}: \"chat_template\" must be a string or a list of named templates");
        }
    }

    private static JsonElement? Optional(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private static string TypeOf(JsonElement element, string file, string path) =>
        element.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String
            ? type.GetString()!
            : throw new SharpTuneException($"{file}: {path} has no \"type\"");

    private static bool Bool(JsonElement element, string name, bool fallback) =>
        element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? value.GetBoolean()
            : fallback;

    private static SharpTuneException Unsupported(string file, string path, string what) =>
        new($"{file}: {path}: {what} is not supported");

    private static BpeModel ReadModel(JsonElement root, string file)
    {
        if (Optional(root, "model") is not { } model)
        {
            throw new SharpTuneException($"{file}: missing \"model\"");
        }
        string type = model.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "BPE";
        if (type != "BPE")
        {
            throw Unsupported(file, "model.type", $"model type \"{type}\" (only byte-level BPE)");
        }
        if (Optional(model, "dropout") is { } dropout && dropout.GetDouble() != 0)
        {
            throw Unsupported(file, "model.dropout", "BPE dropout");
        }
        if (Bool(model, "byte_fallback", false))
        {
            throw Unsupported(file, "model.byte_fallback", "byte fallback (SentencePiece-style BPE)");
        }
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (Optional(model, affix) is { } value && value.GetString() is { Length: > 0 })
            {
                throw Unsupported(file, $"model.{affix}", "a subword prefix/suffix");
            }
        }
        if (Optional(model, "vocab") is not { ValueKind: JsonValueKind.Object } vocabElement)
        {
            throw new SharpTuneException($"{file}: model.vocab must be an object of token → id");
        }
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject())
        {
            vocab[entry.Name] = entry.Value.GetInt32();
        }
        var merges = new List<(string, string)>();
        if (Optional(model, "merges") is { } mergesElement)
        {
            int index = 0;
            foreach (var merge in mergesElement.EnumerateArray())
            {
                merges.Add(ReadMerge(merge, file, index++));
            }
        }
        return new BpeModel(vocab, merges, Bool(model, "ignore_merges", false), file);
    }

    private static (string, string) ReadMerge(JsonElement merge, string file, int index)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            string text = merge.GetString()!;
            int space = text.IndexOf(' ', 1);
            if (space > 0)
            {
                return (text[..space], text[(space + 1)..]);
            }
        }
        else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2)
        {
            return (merge[0].GetString()!, merge[1].GetString()!);
        }
        throw new SharpTuneException($"{file}: model.merges[{index}] must be \"left right\" or [left, right]");
    }

    private static List<AddedToken> ReadAddedTokens(JsonElement root, string file)
    {
        var tokens = new List<AddedToken>();
        if (Optional(root, "added_tokens") is not { } list)
        {
            return tokens;
        }
        int index = 0;
        foreach (var entry in list.EnumerateArray())
        {
            if (!entry.TryGetProperty("id", out var id) || !entry.TryGetProperty("content", out var content))
            {
                throw new SharpTuneException($"{file}: added_tokens[{index}] needs \"id\" and \"content\"");
            }
            bool special = Bool(entry, "special", false);
            tokens.Add(new AddedToken(id.GetInt32(), content.GetString()!, special, Bool(entry, "single_word", false),
                Bool(entry, "lstrip", false), Bool(entry, "rstrip", false), Bool(entry, "normalized", !special)));
            index++;
        }
        return tokens;
    }

    /// <summary>True for NFC, false for no normalization.</summary>
    private static bool ReadNormalizer(JsonElement? element, string file, string path)
    {
        if (element is not { } normalizer)
        {
            return false;
        }
        string type = TypeOf(normalizer, file, path);
        switch (type)
        {
            case "NFC":
                return true;
            case "Sequence":
                bool nfc = false;
                int index = 0;
                foreach (var step in normalizer.GetProperty("normalizers").EnumerateArray())
                {
                    nfc |= ReadNormalizer(step, file, $"{path}.normalizers[{index++}]");
                }
                return nfc;
            default:
                throw Unsupported(file, path, $"normalizer \"{type}\"");
        }
    }

    private static IPreTokenizer ReadPreTokenizer(JsonElement root, string file)
    {
        if (Optional(root, "pre_tokenizer") is not { } element)
        {
            throw Unsupported(file, "pre_tokenizer", "a missing pre-tokenizer (byte-level BPE needs ByteLevel)");
        }
        var steps = new List<(string Type, IPreTokenizer Step)>();
        Flatten(element, "pre_tokenizer", file, steps);
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i].Type == "ByteLevel" && i != steps.Count - 1)
            {
                throw Unsupported(file, "pre_tokenizer", "a pre-tokenizer after ByteLevel");
            }
        }
        if (steps.Count == 0 || steps[^1].Type != "ByteLevel")
        {
            throw Unsupported(file, "pre_tokenizer", "a pre-tokenizer without ByteLevel (only byte-level BPE)");
        }
        return steps.Count == 1 ? steps[0].Step : new SequencePreTokenizer([.. steps.Select(s => s.Step)]);
    }

    private static void Flatten(JsonElement element, string path, string file, List<(string, IPreTokenizer)> steps)
    {
        string type = TypeOf(element, file, path);
        switch (type)
        {
            case "Sequence":
                int index = 0;
                foreach (var step in element.GetProperty("pretokenizers").EnumerateArray())
                {
                    Flatten(step, $"{path}.pretokenizers[{index++}]", file, steps);
                }
                break;
            case "Split":
                steps.Add((type, ReadSplit(element, path, file)));
                break;
            case "ByteLevel":
                var gpt2 = Bool(element, "use_regex", true)
                    ? SplitPatterns.ForRegex(ByteLevelPreTokenizer.Gpt2Pattern, $"{file}: {path}")
                    : null;
                steps.Add((type, new ByteLevelPreTokenizer(Bool(element, "add_prefix_space", true), gpt2)));
                break;
            case "Digits":
                steps.Add((type, new DigitsPreTokenizer(Bool(element, "individual_digits", false))));
                break;
            default:
                throw Unsupported(file, path, $"pre-tokenizer \"{type}\"");
        }
    }

    private static SplitPreTokenizer ReadSplit(JsonElement element, string path, string file)
    {
        var pattern = element.GetProperty("pattern");
        ISplitPattern matcher;
        if (pattern.TryGetProperty("Regex", out var regex))
        {
            matcher = SplitPatterns.ForRegex(regex.GetString()!, $"{file}: {path}.pattern.Regex");
        }
        else if (pattern.TryGetProperty("String", out var literal))
        {
            matcher = SplitPatterns.ForLiteral(literal.GetString()!);
        }
        else
        {
            throw Unsupported(file, $"{path}.pattern", "a pattern other than Regex or String");
        }
        string behaviorName = element.GetProperty("behavior").GetString()!;
        if (!Enum.TryParse<SplitBehavior>(behaviorName, out var behavior))
        {
            throw Unsupported(file, $"{path}.behavior", $"split behavior \"{behaviorName}\"");
        }
        return new SplitPreTokenizer(matcher, behavior, Bool(element, "invert", false));
    }

    private static void CheckDecoder(JsonElement? element, string file, string path)
    {
        if (element is not { } decoder)
        {
            throw Unsupported(file, path, "a missing decoder (byte-level BPE needs the ByteLevel decoder)");
        }
        string type = TypeOf(decoder, file, path);
        if (type == "Sequence")
        {
            int index = 0;
            foreach (var step in decoder.GetProperty("decoders").EnumerateArray())
            {
                CheckDecoder(step, file, $"{path}.decoders[{index++}]");
            }
        }
        else if (type != "ByteLevel")
        {
            throw Unsupported(file, path, $"decoder \"{type}\"");
        }
    }

    private static PostProcessor ReadPostProcessor(JsonElement? element, string file, string path)
    {
        if (element is not { } processor)
        {
            return PostProcessor.None;
        }
        string type = TypeOf(processor, file, path);
        switch (type)
        {
            case "ByteLevel":
                return new PostProcessor([], [], Bool(processor, "trim_offsets", true),
                    Bool(processor, "add_prefix_space", true));
            case "Sequence":
                var result = PostProcessor.None;
                int index = 0;
                foreach (var step in processor.GetProperty("processors").EnumerateArray())
                {
                    result = result.Then(ReadPostProcessor(step, file, $"{path}.processors[{index++}]"));
                }
                return result;
            case "TemplateProcessing":
                return ReadTemplate(processor, file, path);
            default:
                throw Unsupported(file, path, $"post-processor \"{type}\"");
        }
    }

    private static PostProcessor ReadTemplate(JsonElement processor, string file, string path)
    {
        var specialIds = new Dictionary<string, int[]>();
        if (processor.TryGetProperty("special_tokens", out var specials))
        {
            foreach (var entry in specials.EnumerateObject())
            {
                specialIds[entry.Name] = [.. entry.Value.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32())];
            }
        }
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        foreach (var item in processor.GetProperty("single").EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _))
            {
                seenSequence = true;
            }
            else if (item.TryGetProperty("SpecialToken", out var special))
            {
                string id = special.GetProperty("id").GetString()!;
                if (!specialIds.TryGetValue(id, out var ids))
                {
                    throw new SharpTuneException($"{file}: {path}.single uses \"{id}\", missing from special_tokens");
                }
                (seenSequence ? suffix : prefix).AddRange(ids);
            }
            else
            {
                throw Unsupported(file, $"{path}.single", "a template item other than SpecialToken or Sequence");
            }
        }
        return new PostProcessor([.. prefix], [.. suffix], false, false);
    }

    /// <summary>transformers rebuilds the post-processor from tokenizer_config.json's add_bos_token/add_eos_token when
    /// either is given (BOS first, EOS last), replacing the one in tokenizer.json.</summary>
    private static PostProcessor ApplyConfigSpecialTokens(PostProcessor fromFile, TokenizerConfig config,
        Dictionary<string, int> addedTokenIds, BpeModel model)
    {
        if (config.AddBosToken is null && config.AddEosToken is null)
        {
            return fromFile;
        }
        int? Id(string? token) => token is null ? null
            : addedTokenIds.TryGetValue(token, out int id) ? id
            : model.TryGetId(token, out id) ? id : null;
        int[] prefix = config.AddBosToken == true && Id(config.BosToken) is int bos ? [bos] : [];
        int[] suffix = config.AddEosToken == true && Id(config.EosToken) is int eos ? [eos] : [];
        return new PostProcessor(prefix, suffix, false, false);
    }
}
