using System.Buffers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

/// <summary>
/// A Hugging Face byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json) that gives exactly the ids of
/// Hugging Face's <c>tokenizers</c> library: added tokens are split out first, the rest is NFC-normalized when the
/// file says so, split by the pre-tokenizer regexes (matched by code point), and merged by BPE.
/// Thread-safe; each thread keeps its own cache of pre-token → ids.
/// </summary>
public sealed class Tokenizer
{
    private const int MaxCachedWords = 200_000;
    private const int MaxCachedWordLength = 256;

    private readonly BpeModel _model;
    private readonly AddedTokenMatcher _rawTokens;
    private readonly AddedTokenMatcher _normalizedTokens;
    private readonly bool _nfc;
    private readonly IPreTokenizer _preTokenizer;
    private readonly PostProcessor _postProcessor;
    private readonly string?[] _idToToken;
    private readonly bool[] _isSpecial;
    private readonly Dictionary<string, int> _addedTokenIds;
    private readonly ThreadLocal<WordCache> _cache = new(() => new WordCache());

    internal Tokenizer(TokenizerDefinition definition)
    {
        Definition = definition;
        _model = definition.Model;
        _nfc = definition.Nfc;
        _preTokenizer = definition.PreTokenizer;
        _postProcessor = definition.PostProcessor;
        var added = definition.AddedTokens;
        _rawTokens = new AddedTokenMatcher(added.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedTokens = new AddedTokenMatcher(added.Where(t => t.Normalized)
            .Select(t => (_nfc ? NfcNormalizer.ComposeOrKeep(t.Content) : t.Content, t)));
        _addedTokenIds = [];
        foreach (var token in added)
        {
            _addedTokenIds[token.Content] = token.Id;
        }
        int maxId = Math.Max(_model.Vocab.Count == 0 ? -1 : _model.Vocab.Values.Max(),
            added.Count == 0 ? -1 : added.Max(t => t.Id));
        VocabSize = maxId + 1;
        _idToToken = new string?[VocabSize];
        foreach (var (token, id) in _model.Vocab)
        {
            _idToToken[id] = token;
        }
        _isSpecial = new bool[VocabSize];
        foreach (var token in added)
        {
            _idToToken[token.Id] = token.Content;
            _isSpecial[token.Id] = token.Special;
        }
        var config = definition.Config;
        BosToken = config.BosToken;
        EosToken = config.EosToken;
        BosTokenId = BosToken is null ? null : TokenToId(BosToken);
        EosTokenId = EosToken is null ? null : TokenToId(EosToken);
        PadTokenId = config.PadToken is null ? null : TokenToId(config.PadToken);
        ChatTemplateSource = config.ChatTemplate;
        AddBosToken = BosTokenId is int bos && _postProcessor.Prefix.Contains(bos);
    }

    internal TokenizerDefinition Definition { get; }

    /// <summary>One more than the largest id of the vocabulary and the added tokens (the embedding rows needed).</summary>
    public int VocabSize { get; }
    public string? BosToken { get; }
    public int? BosTokenId { get; }
    public string? EosToken { get; }
    public int? EosTokenId { get; }
    public int? PadTokenId { get; }

    /// <summary>Whether <see cref="Encode"/> with special tokens puts the BOS token first.</summary>
    public bool AddBosToken { get; }

    /// <summary>The raw Jinja chat template (tokenizer_config.json "chat_template" or chat_template.jinja), if any.</summary>
    public string? ChatTemplateSource { get; }

    /// <summary>Loads tokenizer.json, tokenizer_config.json and special_tokens_map.json from a model folder.</summary>
    public static Tokenizer Load(string modelDir) => new(TokenizerLoader.Load(modelDir));

    /// <summary>Writes tokenizer.json and tokenizer_config.json into <paramref name="dir"/> (created if needed).</summary>
    public void Save(string dir) => TokenizerWriter.Save(Definition, dir);

    public int? TokenToId(string token) =>
        _addedTokenIds.TryGetValue(token, out int id) ? id : _model.TryGetId(token, out id) ? id : null;

    public string? IdToToken(int id) => id >= 0 && id < _idToToken.Length ? _idToToken[id] : null;

    /// <summary>Whether the id is an added token marked special (skipped by Decode with skipSpecialTokens).</summary>
    public bool IsSpecial(int id) => id >= 0 && id < _isSpecial.Length && _isSpecial[id];

    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        EncodeCore(text, ids, null);
        return Finish(text, ids, null, addSpecialTokens).Ids;
    }

    public TokenEncoding EncodeWithOffsets(string text, bool addSpecialTokens = true)
    {
        var ids = new List<int>(text.Length / 3 + 4);
        var offsets = new List<(int, int)>(ids.Capacity);
        EncodeCore(text, ids, offsets);
        return Finish(text, ids, offsets, addSpecialTokens);
    }

    /// <summary>Encodes many texts in parallel over all cores; the result is in input order.</summary>
    public int[][] EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true)
    {
        var results = new int[texts.Count][];
        Parallel.For(0, texts.Count, i => results[i] = Encode(texts[i], addSpecialTokens));
        return results;
    }

    /// <summary>Text for ids, as Hugging Face's decode with the ByteLevel decoder: token bytes concatenated and read as
    /// UTF-8 (invalid bytes become U+FFFD). Unknown ids are skipped.</summary>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            AppendBytes(id, skipSpecialTokens, bytes);
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    internal void AppendBytes(int id, bool skipSpecialTokens, List<byte> output)
    {
        string? token = IdToToken(id);
        if (token is null || (skipSpecialTokens && _isSpecial[id]))
        {
            return;
        }
        ByteLevel.AppendTokenBytes(token, output);
    }

    private TokenEncoding Finish(string text, List<int> ids, List<(int Start, int End)>? offsets, bool addSpecialTokens)
    {
        if (offsets is not null && _postProcessor.TrimOffsets)
        {
            _postProcessor.Trim(text, ids, offsets, IdToToken);
        }
        if (!addSpecialTokens || (_postProcessor.Prefix.Length == 0 && _postProcessor.Suffix.Length == 0))
        {
            return new TokenEncoding([.. ids], offsets is null ? [] : [.. offsets]);
        }
        int[] all = [.. _postProcessor.Prefix, .. ids, .. _postProcessor.Suffix];
        if (offsets is null)
        {
            return new TokenEncoding(all, []);
        }
        var allOffsets = new (int, int)[all.Length];
        offsets.CopyTo(allOffsets, _postProcessor.Prefix.Length);
        return new TokenEncoding(all, allOffsets);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loop: skip the slow first JIT tier
    private void EncodeCore(string text, List<int> ids, List<(int Start, int End)>? offsets)
    {
        if (text.Length == 0)
        {
            return;
        }
        var root = new Piece(new TextView(text), 0, text.Length);
        var stage1 = new List<Piece>();
        if (_rawTokens.IsEmpty)
        {
            stage1.Add(root);
        }
        else
        {
            _rawTokens.Split(root, stage1);
        }
        var stage2 = new List<Piece>();
        var words = new List<Piece>();
        foreach (var piece in stage1)
        {
            if (piece.IsToken)
            {
                AddToken(piece, ids, offsets);
                continue;
            }
            var normalized = _nfc ? NfcNormalizer.Normalize(piece) : piece;
            stage2.Clear();
            if (_normalizedTokens.IsEmpty)
            {
                stage2.Add(normalized);
            }
            else
            {
                _normalizedTokens.Split(normalized, stage2);
            }
            foreach (var part in stage2)
            {
                if (part.IsToken)
                {
                    AddToken(part, ids, offsets);
                    continue;
                }
                words.Clear();
                _preTokenizer.Split(part, words);
                foreach (var word in words)
                {
                    EncodeWord(word, ids, offsets);
                }
            }
        }
    }

    private static void AddToken(Piece piece, List<int> ids, List<(int Start, int End)>? offsets)
    {
        ids.Add(piece.TokenId);
        offsets?.Add(piece.View.ToOriginal(piece.Start, piece.End));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loop: skip the slow first JIT tier
    private void EncodeWord(Piece word, List<int> ids, List<(int Start, int End)>? offsets)
    {
        var span = word.Span;
        if (span.Length == 0)
        {
            return;
        }
        int first = ids.Count;
        var cache = _cache.Value!;
        if (cache.Lookup.TryGetValue(span, out int[]? cached))
        {
            ids.AddRange(cached);
        }
        else
        {
            int maxBytes = Encoding.UTF8.GetMaxByteCount(span.Length);
            byte[]? rented = maxBytes > 1024 ? ArrayPool<byte>.Shared.Rent(maxBytes) : null;
            Span<byte> buffer = rented ?? stackalloc byte[1024];
            int byteCount = Encoding.UTF8.GetBytes(span, buffer);
            _model.EncodeWord(buffer[..byteCount], ids);
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
            if (span.Length <= MaxCachedWordLength)
            {
                if (cache.Map.Count >= MaxCachedWords)
                {
                    cache.Map.Clear();
                }
                cache.Map[span.ToString()] = ids.GetRange(first, ids.Count - first).ToArray();
            }
        }
        if (offsets is not null)
        {
            AddWordOffsets(word, ids, first, offsets);
        }
    }

    /// <summary>Offsets for the tokens of one word: each token covers whole characters of the input (a token that
    /// holds only part of a character's UTF-8 bytes still reports the whole character, as Hugging Face does).</summary>
    private void AddWordOffsets(Piece word, List<int> ids, int first, List<(int Start, int End)> offsets)
    {
        var span = word.Span;
        // For each UTF-8 byte of the word: the UTF-16 start and end of the character it belongs to.
        var charStart = new List<int>(span.Length * 3);
        var charEnd = new List<int>(span.Length * 3);
        for (int i = 0; i < span.Length;)
        {
            int cp = UnicodeClass.CodePointAt(span, i, out int length);
            int byteLength = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            for (int b = 0; b < byteLength; b++)
            {
                charStart.Add(i);
                charEnd.Add(i + length);
            }
            i += length;
        }
        int bytePos = 0;
        for (int t = first; t < ids.Count; t++)
        {
            int tokenBytes = Math.Max(1, IdToToken(ids[t])?.Length ?? 1);
            int lastByte = Math.Min(bytePos + tokenBytes, charStart.Count) - 1;
            int start = word.Start + charStart[Math.Min(bytePos, charStart.Count - 1)];
            int end = word.Start + charEnd[lastByte];
            offsets.Add(word.View.ToOriginal(start, end));
            bytePos += tokenBytes;
        }
    }

    /// <summary>Pre-token text → ids, per thread; looked up by span so a hit allocates nothing.</summary>
    private sealed class WordCache
    {
        public WordCache() => Lookup = Map.GetAlternateLookup<ReadOnlySpan<char>>();

        public Dictionary<string, int[]> Map { get; } = new(StringComparer.Ordinal);
        public Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> Lookup { get; }
    }
}

/// <summary>Everything a <see cref="Tokenizer"/> is built from, and what <see cref="Tokenizer.Save"/> writes.</summary>
internal sealed record TokenizerDefinition(
    BpeModel Model,
    IReadOnlyList<AddedToken> AddedTokens,
    bool Nfc,
    IPreTokenizer PreTokenizer,
    PostProcessor PostProcessor,
    TokenizerConfig Config,
    string TokenizerJsonText,
    JsonObject ConfigJson);

/// <summary>The parts of tokenizer_config.json (and special_tokens_map.json) the tokenizer uses.</summary>
internal sealed record TokenizerConfig(string? BosToken, string? EosToken, string? PadToken, bool? AddBosToken,
    bool? AddEosToken, string? ChatTemplate);
