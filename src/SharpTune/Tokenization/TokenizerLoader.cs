using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

/// <summary>Reads tokenizer.json / tokenizer_config.json / special_tokens_map.json into a
/// <see cref="TokenizerDefinition"/>, rejecting what this implementation does not support with an error that names
/// the file and the feature.</summary>
internal static class TokenizerLoader
{
    /// <summary>Ids index tables as large as the highest id: 16M covers every real vocabulary (~256k at most).</summary>
    private const int MaxTokenId = (1 << 24) - 1;

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
        string tokenizerText = InputFile.ReadAllText(tokenizerPath);
        var configJson = ReadObject(Path.Combine(modelDir, "tokenizer_config.json")) ?? [];
        var specialMap = ReadObject(Path.Combine(modelDir, "special_tokens_map.json")) ?? [];
        string? jinjaTemplate = File.Exists(Path.Combine(modelDir, "chat_template.jinja"))
            ? InputFile.ReadAllText(Path.Combine(modelDir, "chat_template.jinja"))
            : null;
        var config = ReadConfig(configJson, specialMap, jinjaTemplate, Path.Combine(modelDir, "tokenizer_config.json"));
        return Parse(tokenizerText, tokenizerPath, config, configJson);
    }

    public static TokenizerDefinition Parse(string tokenizerText, string file, TokenizerConfig config,
        JsonObject configJson)
    {
        var root = JsonFile.Parse(System.Text.Encoding.UTF8.GetBytes(tokenizerText), file);
        var model = ReadModel(root);
        var addedTokens = ReadAddedTokens(root);
        bool nfc = ReadNormalizer(root["normalizer"]);
        var preTokenizer = ReadPreTokenizer(root);
        CheckDecoder(root["decoder"]);
        var tokenIds = new Dictionary<string, int>();
        foreach (var token in addedTokens)
        {
            tokenIds[token.Content] = token.Id;
        }
        var postProcessor = ReadPostProcessor(root["post_processor"]);
        postProcessor = ApplyConfigSpecialTokens(postProcessor, config, tokenIds, model);
        return new TokenizerDefinition(model, addedTokens, nfc, preTokenizer, postProcessor, config, tokenizerText,
            configJson);
    }

    private static JsonObject? ReadObject(string path)
    {
        return File.Exists(path) || Directory.Exists(path) ? JsonFile.ReadObject(path) : null;
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
                    if (entry is JsonObject o && o["name"] is JsonValue name && name.TryGetValue(out string? n) && n == "default")
                    {
                        return o["template"] is JsonValue t && t.TryGetValue(out string? template) ? template
                            : throw new SharpTuneException($"{file}: the \"default\" chat_template needs a \"template\" string");
                    }
                }
                return null;
            default:
                throw new SharpTuneException($"{file}: \"chat_template\" must be a string or a list of named templates");
        }
    }

    private static string TypeOf(JsonField element) => element.Object()["type"].String();

    private static bool Bool(JsonField element, string name, bool fallback) => element[name].BoolOrNull() ?? fallback;

    private static SharpTuneException Unsupported(JsonField at, string what) =>
        new($"{at.File}: {at.Path}: {what} is not supported");

    private static BpeModel ReadModel(JsonField root)
    {
        var model = root["model"];
        if (!model.Exists)
        {
            throw new SharpTuneException($"{root.File}: missing \"model\"");
        }
        model.Object();
        string type = model["type"].StringOrNull() ?? "BPE";
        if (type != "BPE")
        {
            throw Unsupported(model["type"], $"model type \"{ErrorText.OneLine(type)}\" (only byte-level BPE)");
        }
        if (model["dropout"].DoubleOrNull() is { } dropout && dropout != 0)
        {
            throw Unsupported(model["dropout"], "BPE dropout");
        }
        if (Bool(model, "byte_fallback", false))
        {
            throw Unsupported(model["byte_fallback"], "byte fallback (SentencePiece-style BPE)");
        }
        foreach (string affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (model[affix].StringOrNull() is { Length: > 0 })
            {
                throw Unsupported(model[affix], "a subword prefix/suffix");
            }
        }
        var vocabField = model["vocab"];
        if (!vocabField.IsObject)
        {
            throw vocabField.Expected("an object of token → id");
        }
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in vocabField.Properties())
        {
            vocab[token] = id.Int(0, MaxTokenId);
        }
        var merges = new List<(string, string)>();
        if (model["merges"].Exists)
        {
            foreach (var merge in model["merges"].Items())
            {
                merges.Add(ReadMerge(merge));
            }
        }
        return new BpeModel(vocab, merges, Bool(model, "ignore_merges", false), root.File);
    }

    private static (string, string) ReadMerge(JsonField merge)
    {
        if (merge.Kind == JsonValueKind.String)
        {
            string text = merge.String();
            int space = text.Length > 1 ? text.IndexOf(' ', 1) : -1;
            if (space > 0)
            {
                return (text[..space], text[(space + 1)..]);
            }
        }
        else if (merge.IsArray && merge.Count == 2)
        {
            return (merge[0].String(), merge[1].String());
        }
        throw merge.Expected("\"left right\" or [left, right]");
    }

    private static List<AddedToken> ReadAddedTokens(JsonField root)
    {
        var tokens = new List<AddedToken>();
        if (!root["added_tokens"].Exists)
        {
            return tokens;
        }
        foreach (var entry in root["added_tokens"].Items())
        {
            entry.Object();
            bool special = Bool(entry, "special", false);
            tokens.Add(new AddedToken(entry["id"].Int(0, MaxTokenId), entry["content"].String(), special, Bool(entry, "single_word", false),
                Bool(entry, "lstrip", false), Bool(entry, "rstrip", false), Bool(entry, "normalized", !special)));
        }
        return tokens;
    }

    /// <summary>True for NFC, false for no normalization.</summary>
    private static bool ReadNormalizer(JsonField normalizer)
    {
        if (!normalizer.Exists)
        {
            return false;
        }
        string type = TypeOf(normalizer);
        switch (type)
        {
            case "NFC":
                return true;
            case "Sequence":
                bool nfc = false;
                foreach (var step in normalizer["normalizers"].Items())
                {
                    nfc |= ReadNormalizer(step);
                }
                return nfc;
            default:
                throw Unsupported(normalizer, $"normalizer \"{ErrorText.OneLine(type)}\"");
        }
    }

    private static IPreTokenizer ReadPreTokenizer(JsonField root)
    {
        var element = root["pre_tokenizer"];
        if (!element.Exists)
        {
            throw Unsupported(element, "a missing pre-tokenizer (byte-level BPE needs ByteLevel)");
        }
        var steps = new List<(string Type, IPreTokenizer Step)>();
        Flatten(element, steps);
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i].Type == "ByteLevel" && i != steps.Count - 1)
            {
                throw Unsupported(element, "a pre-tokenizer after ByteLevel");
            }
        }
        if (steps.Count == 0 || steps[^1].Type != "ByteLevel")
        {
            throw Unsupported(element, "a pre-tokenizer without ByteLevel (only byte-level BPE)");
        }
        return steps.Count == 1 ? steps[0].Step : new SequencePreTokenizer([.. steps.Select(s => s.Step)]);
    }

    private static void Flatten(JsonField element, List<(string, IPreTokenizer)> steps)
    {
        string type = TypeOf(element);
        switch (type)
        {
            case "Sequence":
                foreach (var step in element["pretokenizers"].Items())
                {
                    Flatten(step, steps);
                }
                break;
            case "Split":
                steps.Add((type, ReadSplit(element)));
                break;
            case "ByteLevel":
                var gpt2 = Bool(element, "use_regex", true)
                    ? SplitPatterns.ForRegex(ByteLevelPreTokenizer.Gpt2Pattern, $"{element.File}: {element.Path}")
                    : null;
                steps.Add((type, new ByteLevelPreTokenizer(Bool(element, "add_prefix_space", true), gpt2)));
                break;
            case "Digits":
                steps.Add((type, new DigitsPreTokenizer(Bool(element, "individual_digits", false))));
                break;
            default:
                throw Unsupported(element, $"pre-tokenizer \"{ErrorText.OneLine(type)}\"");
        }
    }

    private static SplitPreTokenizer ReadSplit(JsonField element)
    {
        var pattern = element["pattern"].Object();
        ISplitPattern matcher;
        if (pattern["Regex"].Exists)
        {
            matcher = SplitPatterns.ForRegex(pattern["Regex"].String(), $"{element.File}: {pattern["Regex"].Path}");
        }
        else if (pattern["String"].Exists)
        {
            matcher = SplitPatterns.ForLiteral(pattern["String"].String());
        }
        else
        {
            throw Unsupported(pattern, "a pattern other than Regex or String");
        }
        string behaviorName = element["behavior"].String();
        if (!Enum.TryParse<SplitBehavior>(behaviorName, out var behavior) || !Enum.IsDefined(behavior) || behaviorName.Any(char.IsDigit))
        {
            throw Unsupported(element["behavior"], $"split behavior \"{ErrorText.OneLine(behaviorName)}\"");
        }
        return new SplitPreTokenizer(matcher, behavior, Bool(element, "invert", false));
    }

    private static void CheckDecoder(JsonField decoder)
    {
        if (!decoder.Exists)
        {
            throw Unsupported(decoder, "a missing decoder (byte-level BPE needs the ByteLevel decoder)");
        }
        string type = TypeOf(decoder);
        if (type == "Sequence")
        {
            foreach (var step in decoder["decoders"].Items())
            {
                CheckDecoder(step);
            }
        }
        else if (type != "ByteLevel")
        {
            throw Unsupported(decoder, $"decoder \"{ErrorText.OneLine(type)}\"");
        }
    }

    private static PostProcessor ReadPostProcessor(JsonField processor)
    {
        if (!processor.Exists)
        {
            return PostProcessor.None;
        }
        string type = TypeOf(processor);
        switch (type)
        {
            case "ByteLevel":
                return new PostProcessor([], [], Bool(processor, "trim_offsets", true),
                    Bool(processor, "add_prefix_space", true));
            case "Sequence":
                var result = PostProcessor.None;
                foreach (var step in processor["processors"].Items())
                {
                    result = result.Then(ReadPostProcessor(step));
                }
                return result;
            case "TemplateProcessing":
                return ReadTemplate(processor);
            default:
                throw Unsupported(processor, $"post-processor \"{ErrorText.OneLine(type)}\"");
        }
    }

    private static PostProcessor ReadTemplate(JsonField processor)
    {
        var specialIds = new Dictionary<string, int[]>();
        if (processor["special_tokens"].Exists)
        {
            foreach (var (name, entry) in processor["special_tokens"].Properties())
            {
                specialIds[name] = [.. entry.Object()["ids"].Items().Select(i => i.Int(0, MaxTokenId))];
            }
        }
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        foreach (var item in processor["single"].Items())
        {
            if (item["Sequence"].Exists)
            {
                seenSequence = true;
            }
            else if (item["SpecialToken"].Exists)
            {
                string id = item["SpecialToken"].Object()["id"].String();
                if (!specialIds.TryGetValue(id, out var ids))
                {
                    throw new SharpTuneException($"{processor.File}: {processor.Path}.single uses \"{ErrorText.OneLine(id)}\", missing from special_tokens");
                }
                (seenSequence ? suffix : prefix).AddRange(ids);
            }
            else
            {
                throw Unsupported(item, "a template item other than SpecialToken or Sequence");
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
