using System.Text.Json.Nodes;
using SharpTune.Tokenization;

namespace SharpTune.Export;

/// <summary>
/// A byte-level BPE tokenizer as llama.cpp's "gpt2" tokenizer model reads it from GGUF metadata: every token
/// (padded to the model's vocab_size with [PADn] tokens as llama.cpp's converter does), its type, the merges,
/// the special ids, the add-BOS flag, the pre-tokenizer name and the chat template.
/// </summary>
public sealed record GgufVocab(
    IReadOnlyList<string> Tokens,
    IReadOnlyList<int> TokenTypes,
    IReadOnlyList<string> Merges,
    string PreTokenizer,
    int? BosId,
    int? EosId,
    int? PadId,
    bool AddBos,
    string? ChatTemplate)
{
    // llama.cpp's token types
    public const int Normal = 1, Control = 3, UserDefined = 4, Unused = 5;

    /// <summary>llama.cpp's pre-tokenizer names and the split regexes of tokenizer.json they implement (in
    /// order; ByteLevel without its own regex last). llama.cpp knows a pre-tokenizer by name only, so a
    /// tokenizer whose splits match none of these cannot be exported faithfully.</summary>
    static readonly (string Name, string[] Patterns)[] PreTokenizers =
    [
        ("qwen2", [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]),
        ("llama-bpe", [@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"]),
        ("deepseek-v3", [@"\p{N}{1,3}", "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
            "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"]),
        ("gpt-2", [@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"]),
    ];

    /// <summary>Reads tokenizer.json from <paramref name="modelDir"/>; <paramref name="tokenizer"/> (the same folder,
    /// loaded) gives the special tokens and the add-BOS behaviour exactly as encoding applies them.</summary>
    public static GgufVocab Load(string modelDir, Tokenizer tokenizer, int vocabSize, int? configBosId)
    {
        string path = Path.Combine(modelDir, "tokenizer.json");
        var json = JsonFile.ReadObject(path);
        if (json["model"] is not JsonObject model || model["type"]?.GetValue<string>() != "BPE" || model["vocab"] is not JsonObject vocab)
            throw new SharpTuneException($"{path}: expected a BPE model with a vocab; only byte-level BPE tokenizers export to GGUF");

        var byId = new Dictionary<int, string>();
        foreach (var (token, id) in vocab) byId[id!.GetValue<int>()] = token;
        var added = new Dictionary<int, (string Content, bool Special)>();
        foreach (var node in json["added_tokens"] as JsonArray ?? [])
        {
            int id = node!["id"]!.GetValue<int>();
            string content = node["content"]!.GetValue<string>();
            added[id] = (content, node["special"]?.GetValue<bool>() ?? false);
            byId[id] = content;
        }
        int maxId = byId.Keys.Max();
        if (maxId >= vocabSize)
            throw new SharpTuneException($"{path}: token id {maxId} ('{byId[maxId]}') is beyond the model's vocab_size {vocabSize} (config.json)");

        var tokens = new string[vocabSize];
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
        {
            if (added.TryGetValue(i, out var a))
                (tokens[i], types[i]) = (a.Content, a.Special || LooksSpecial(a.Content) ? Control : UserDefined);
            else if (byId.TryGetValue(i, out var t))
                (tokens[i], types[i]) = (t, Normal);
            else
                (tokens[i], types[i]) = ($"[PAD{i}]", Unused);
        }

        var merges = (model["merges"] as JsonArray ?? []).Select(m => m switch
        {
            JsonArray pair => $"{pair[0]!.GetValue<string>()} {pair[1]!.GetValue<string>()}",
            _ => m!.GetValue<string>(),
        }).ToList();

        int[] withSpecials = tokenizer.Encode("a", addSpecialTokens: true), plain = tokenizer.Encode("a", addSpecialTokens: false);
        if (withSpecials.Length - plain.Length > (tokenizer.AddBosToken ? 1 : 0))
            throw new SharpTuneException($"{path}: the post-processor adds tokens other than BOS ({string.Join(", ", withSpecials)}); llama.cpp's gpt2 tokenizer only adds BOS");

        return new GgufVocab(tokens, types, merges, PreTokenizerName(json, path, tokens), tokenizer.BosTokenId ?? configBosId,
            tokenizer.EosTokenId, tokenizer.PadTokenId, tokenizer.AddBosToken, tokenizer.ChatTemplateSource);
    }

    /// <summary>llama.cpp's converter marks added tokens that look like control tokens as control even when the
    /// tokenizer does not call them special.</summary>
    static bool LooksSpecial(string t) =>
        (t.StartsWith("<|") && t.EndsWith("|>")) || (t.StartsWith("<｜") && t.EndsWith("｜>")) || t is "<pad>" or "<mask>";

    /// <summary>The pre-tokenizer name whose regexes are the tokenizer's split patterns. DeepSeek-R1's Qwen distills
    /// keep Qwen2's regex; llama.cpp's converter names them "deepseek-r1-qwen" (same splitting as "qwen2").</summary>
    static string PreTokenizerName(JsonObject json, string path, IReadOnlyList<string> tokens)
    {
        var patterns = new List<string>();
        void Collect(JsonNode? node)
        {
            switch (node?["type"]?.GetValue<string>())
            {
                case null: return;
                case "Sequence": foreach (var p in node["pretokenizers"] as JsonArray ?? []) Collect(p); break;
                case "Split":
                    patterns.Add(node["pattern"]?["Regex"]?.GetValue<string>() ?? $"literal:{node["pattern"]?["String"]}");
                    if (node["behavior"]?.GetValue<string>() != "Isolated" || node["invert"]?.GetValue<bool>() == true)
                        throw new SharpTuneException($"{path}: pre_tokenizer Split with behavior {node["behavior"]} is not one llama.cpp implements");
                    break;
                case "ByteLevel":
                    if (node["add_prefix_space"]?.GetValue<bool>() == true)
                        throw new SharpTuneException($"{path}: pre_tokenizer ByteLevel adds a prefix space; llama.cpp's gpt2 tokenizer does not");
                    if (node["use_regex"]?.GetValue<bool>() ?? true) patterns.Add(PreTokenizers.First(p => p.Name == "gpt-2").Patterns[0]);
                    break;
                case var other: throw new SharpTuneException($"{path}: pre_tokenizer step {other} has no llama.cpp equivalent");
            }
        }
        Collect(json["pre_tokenizer"]);
        foreach (var (name, known) in PreTokenizers)
            if (known.SequenceEqual(patterns))
                return name == "qwen2" && tokens.Contains("<｜begin▁of▁sentence｜>") ? "deepseek-r1-qwen" : name;
        throw new SharpTuneException($"{path}: the pre-tokenizer's split patterns ({string.Join(" ; ", patterns)}) match none of llama.cpp's "
            + $"pre-tokenizers ({string.Join(", ", PreTokenizers.Select(p => p.Name))}); llama.cpp would split text differently, so the GGUF would tokenize unlike training");
    }

    public void AddTo(GgufWriter w)
    {
        w.Add("tokenizer.ggml.model", "gpt2");
        w.Add("tokenizer.ggml.pre", PreTokenizer);
        w.Add("tokenizer.ggml.tokens", Tokens);
        w.Add("tokenizer.ggml.token_type", TokenTypes);
        w.Add("tokenizer.ggml.merges", Merges);
        if (BosId is { } bos) w.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        if (EosId is { } eos) w.Add("tokenizer.ggml.eos_token_id", (uint)eos);
        if (PadId is { } pad) w.Add("tokenizer.ggml.padding_token_id", (uint)pad);
        w.Add("tokenizer.ggml.add_bos_token", AddBos);
        w.Add("tokenizer.ggml.add_eos_token", false);
        if (ChatTemplate is not null) w.Add("tokenizer.chat_template", ChatTemplate);
    }
}
