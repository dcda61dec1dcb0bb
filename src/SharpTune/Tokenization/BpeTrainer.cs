using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace SharpTune.Tokenization;

/// <summary>Roles and extras written into a trained tokenizer's tokenizer_config.json.</summary>
public sealed record BpeTrainerOptions(
    string? BosToken = null,
    string? EosToken = null,
    string? PadToken = null,
    bool AddBosToken = false,
    string? ChatTemplate = null,
    int MinFrequency = 2,
    int ModelMaxLength = 32768);

/// <summary>
/// Trains a byte-level BPE tokenizer in the Qwen2 layout: NFC, the Qwen2 split regex, ByteLevel pre-tokenizer and
/// decoder, the 256 byte tokens first, merged tokens next, special tokens last. Deterministic: ties between equally
/// frequent pairs go to the pair whose token strings sort first (ordinal).
/// </summary>
public static class BpeTrainer
{
    public static Tokenizer Train(IEnumerable<string> corpus, int vocabSize, IReadOnlyList<string> specialTokens,
        BpeTrainerOptions? options = null)
    {
        options ??= new BpeTrainerOptions();
        if (vocabSize < 256 + specialTokens.Count)
        {
            throw new SharpTuneException(
                $"BPE training: vocabSize {vocabSize} is below the 256 byte tokens plus {specialTokens.Count} special tokens");
        }
        var wordCounts = CountWords(corpus, specialTokens);
        var tokens = new List<string>(vocabSize);
        for (int b = 0; b < 256; b++)
        {
            tokens.Add(ByteLevel.ByteToChar[b].ToString());
        }
        var merges = LearnMerges(wordCounts, tokens, vocabSize - specialTokens.Count, options.MinFrequency);
        string json = BuildTokenizerJson(tokens, merges, specialTokens, options);
        var config = BuildConfig(tokens.Count, specialTokens, options);
        var parsedConfig = TokenizerLoader.ReadConfig(config, [], null, "trained tokenizer_config.json");
        return new Tokenizer(TokenizerLoader.Parse(json, "trained tokenizer.json", parsedConfig, config));
    }

    private static Dictionary<string, int> CountWords(IEnumerable<string> corpus, IReadOnlyList<string> specialTokens)
    {
        var specials = new AddedTokenMatcher(specialTokens.Select((t, i) =>
            (t, new AddedToken(i, t, true, false, false, false, false))));
        var scanner = new WordPieceScanner(maxDigits: 1);
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var lookup = counts.GetAlternateLookup<ReadOnlySpan<char>>();
        var pieces = new List<Piece>();
        var matches = new List<(int Start, int End)>();
        foreach (string document in corpus)
        {
            pieces.Clear();
            var whole = new Piece(new TextView(document), 0, document.Length);
            if (specials.IsEmpty)
            {
                pieces.Add(whole);
            }
            else
            {
                specials.Split(whole, pieces);
            }
            foreach (var piece in pieces)
            {
                if (piece.IsToken)
                {
                    continue;
                }
                var normalized = NfcNormalizer.Normalize(piece);
                var text = normalized.Span;
                matches.Clear();
                scanner.FindMatches(text, matches);
                foreach (var (start, end) in matches)
                {
                    var word = text[start..end];
                    lookup[word] = lookup.TryGetValue(word, out int n) ? n + 1 : 1;
                }
            }
        }
        return counts;
    }

    /// <summary>Classic BPE training: repeatedly merge the most frequent adjacent pair, updating pair counts only
    /// for the words that contain it. A max-heap with lazy invalidation finds the best pair.</summary>
    private static List<(string, string)> LearnMerges(Dictionary<string, int> wordCounts, List<string> tokens,
        int targetSize, int minFrequency)
    {
        var words = new List<List<int>>(wordCounts.Count);
        var frequencies = new List<int>(wordCounts.Count);
        foreach (var (word, count) in wordCounts.OrderBy(w => w.Key, StringComparer.Ordinal))
        {
            words.Add([.. Encoding.UTF8.GetBytes(word).Select(b => (int)b)]);
            frequencies.Add(count);
        }
        var pairCounts = new Dictionary<long, int>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < words.Count; w++)
        {
            AddPairs(words[w], frequencies[w], w, pairCounts, pairWords);
        }
        var comparer = Comparer<(int Count, string Left, string Right)>.Create((x, y) =>
        {
            int byCount = y.Count.CompareTo(x.Count);
            if (byCount != 0)
            {
                return byCount;
            }
            int byLeft = string.CompareOrdinal(x.Left, y.Left);
            return byLeft != 0 ? byLeft : string.CompareOrdinal(x.Right, y.Right);
        });
        var queue = new PriorityQueue<long, (int, string, string)>(comparer);
        foreach (var (pair, count) in pairCounts)
        {
            queue.Enqueue(pair, (count, tokens[Left(pair)], tokens[Right(pair)]));
        }
        var merges = new List<(string, string)>();
        var changed = new HashSet<long>();
        while (tokens.Count < targetSize && queue.TryDequeue(out long best, out var priority))
        {
            int current = pairCounts.GetValueOrDefault(best);
            if (current != priority.Item1)
            {
                if (current > 0)
                {
                    queue.Enqueue(best, (current, priority.Item2, priority.Item3));
                }
                continue;
            }
            if (current < minFrequency)
            {
                break;
            }
            int left = Left(best);
            int right = Right(best);
            int merged = tokens.Count;
            tokens.Add(tokens[left] + tokens[right]);
            merges.Add((tokens[left], tokens[right]));
            changed.Clear();
            foreach (int w in pairWords[best].Order())
            {
                MergeWord(words[w], frequencies[w], w, left, right, merged, pairCounts, pairWords, changed);
            }
            foreach (long pair in changed.Order())
            {
                if (pairCounts.GetValueOrDefault(pair) > 0)
                {
                    queue.Enqueue(pair, (pairCounts[pair], tokens[Left(pair)], tokens[Right(pair)]));
                }
            }
        }
        return merges;
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;
    private static int Left(long pair) => (int)(pair >> 32);
    private static int Right(long pair) => (int)(pair & 0xFFFFFFFF);

    private static void AddPairs(List<int> symbols, int frequency, int word, Dictionary<long, int> pairCounts,
        Dictionary<long, HashSet<int>> pairWords)
    {
        for (int i = 0; i + 1 < symbols.Count; i++)
        {
            long pair = Key(symbols[i], symbols[i + 1]);
            pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + frequency;
            if (!pairWords.TryGetValue(pair, out var set))
            {
                pairWords[pair] = set = [];
            }
            set.Add(word);
        }
    }

    /// <summary>Merges every occurrence of (left, right) in one word, left to right, adjusting the counts of the
    /// pairs around each occurrence; pairs that gained are recorded in <paramref name="changed"/>.</summary>
    private static void MergeWord(List<int> symbols, int frequency, int word, int left, int right, int merged,
        Dictionary<long, int> pairCounts, Dictionary<long, HashSet<int>> pairWords, HashSet<long> changed)
    {
        void Count(int a, int b, int delta)
        {
            long pair = Key(a, b);
            pairCounts[pair] = pairCounts.GetValueOrDefault(pair) + delta;
            if (delta > 0)
            {
                if (!pairWords.TryGetValue(pair, out var set))
                {
                    pairWords[pair] = set = [];
                }
                set.Add(word);
                changed.Add(pair);
            }
        }

        for (int i = 0; i + 1 < symbols.Count; i++)
        {
            if (symbols[i] != left || symbols[i + 1] != right)
            {
                continue;
            }
            if (i > 0)
            {
                Count(symbols[i - 1], left, -frequency);
                Count(symbols[i - 1], merged, frequency);
            }
            if (i + 2 < symbols.Count)
            {
                Count(right, symbols[i + 2], -frequency);
                Count(merged, symbols[i + 2], frequency);
            }
            Count(left, right, -frequency);
            symbols[i] = merged;
            symbols.RemoveAt(i + 1);
        }
    }

    private static JsonObject ByteLevelStep() => new()
    {
        ["type"] = "ByteLevel",
        ["add_prefix_space"] = false,
        ["trim_offsets"] = false,
        ["use_regex"] = false,
    };

    private static string BuildTokenizerJson(List<string> tokens, List<(string Left, string Right)> merges,
        IReadOnlyList<string> specialTokens, BpeTrainerOptions options)
    {
        var addedTokens = new JsonArray();
        for (int i = 0; i < specialTokens.Count; i++)
        {
            addedTokens.Add(new JsonObject
            {
                ["id"] = tokens.Count + i,
                ["content"] = specialTokens[i],
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = false,
                ["special"] = true,
            });
        }
        var vocab = new JsonObject();
        for (int id = 0; id < tokens.Count; id++)
        {
            vocab[tokens[id]] = id;
        }
        var mergeArray = new JsonArray();
        foreach (var (left, right) in merges)
        {
            mergeArray.Add(new JsonArray(left, right));
        }
        JsonNode postProcessor = ByteLevelStep();
        int bosIndex = options.BosToken is null ? -1 : IndexOf(specialTokens, options.BosToken);
        if (options.AddBosToken && bosIndex >= 0)
        {
            string bos = options.BosToken!;
            postProcessor = new JsonObject
            {
                ["type"] = "Sequence",
                ["processors"] = new JsonArray(ByteLevelStep(), new JsonObject
                {
                    ["type"] = "TemplateProcessing",
                    ["single"] = new JsonArray(
                        new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
                        new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } }),
                    ["pair"] = new JsonArray(
                        new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 0 } },
                        new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } },
                        new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = bos, ["type_id"] = 1 } },
                        new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } }),
                    ["special_tokens"] = new JsonObject
                    {
                        [bos] = new JsonObject
                        {
                            ["id"] = bos,
                            ["ids"] = new JsonArray(tokens.Count + bosIndex),
                            ["tokens"] = new JsonArray(bos),
                        },
                    },
                }),
            };
        }
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = addedTokens,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "Split",
                        ["pattern"] = new JsonObject { ["Regex"] = SplitPatterns.TrainerPattern },
                        ["behavior"] = "Isolated",
                        ["invert"] = false,
                    },
                    ByteLevelStep()),
            },
            ["post_processor"] = postProcessor,
            ["decoder"] = ByteLevelStep(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = mergeArray,
            },
        };
        return root.ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }

    private static int IndexOf(IReadOnlyList<string> list, string value)
    {
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] == value)
            {
                return i;
            }
        }
        return -1;
    }

    private static JsonObject BuildConfig(int firstSpecialId, IReadOnlyList<string> specialTokens,
        BpeTrainerOptions options)
    {
        var decoder = new JsonObject();
        for (int i = 0; i < specialTokens.Count; i++)
        {
            decoder[(firstSpecialId + i).ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject
            {
                ["content"] = specialTokens[i],
                ["lstrip"] = false,
                ["normalized"] = false,
                ["rstrip"] = false,
                ["single_word"] = false,
                ["special"] = true,
            };
        }
        var config = new JsonObject
        {
            ["add_bos_token"] = options.AddBosToken,
            ["add_eos_token"] = false,
            ["added_tokens_decoder"] = decoder,
            ["bos_token"] = options.BosToken,
            ["clean_up_tokenization_spaces"] = false,
            ["eos_token"] = options.EosToken,
            ["model_max_length"] = options.ModelMaxLength,
            ["pad_token"] = options.PadToken,
            ["tokenizer_class"] = "PreTrainedTokenizerFast",
        };
        if (options.ChatTemplate is not null)
        {
            config["chat_template"] = options.ChatTemplate;
        }
        return config;
    }
}
