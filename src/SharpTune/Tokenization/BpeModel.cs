using System.Runtime.CompilerServices;

namespace SharpTune.Tokenization;

/// <summary>
/// Byte-level BPE: a word's UTF-8 bytes start as one symbol each and are merged by rank. The merge order copies
/// Hugging Face's exactly (a heap of (rank, position) candidates, stale entries checked by their result id), which
/// matters when two different pairs merge into the same token.
/// </summary>
internal sealed class BpeModel
{
    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int[] _byteToId;
    private readonly bool _ignoreMerges;

    /// <summary>Words up to this many bytes are merged with a simple scan instead of a heap.</summary>
    private const int ShortWordBytes = 64;

    public BpeModel(Dictionary<string, int> vocab, IReadOnlyList<(string Left, string Right)> merges, bool ignoreMerges,
        string file)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _ignoreMerges = ignoreMerges;
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            if (!vocab.TryGetValue(left, out int leftId) || !vocab.TryGetValue(right, out int rightId)
                || !vocab.TryGetValue(left + right, out int newId))
            {
                throw new SharpTuneException(
                    $"{file}: model.merges[{rank}] \"{left} {right}\" uses a token that is not in model.vocab");
            }
            _merges[Key(leftId, rightId)] = (rank, newId);
        }
        _byteToId = new int[256];
        for (int b = 0; b < 256; b++)
        {
            if (!vocab.TryGetValue(ByteLevel.ByteToChar[b].ToString(), out _byteToId[b]))
            {
                throw new SharpTuneException(
                    $"{file}: model.vocab lacks the byte-level token for byte 0x{b:X2}; only byte-level BPE vocabularies are supported");
            }
        }
    }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    public bool TryGetId(string token, out int id) => _vocab.TryGetValue(token, out id);

    /// <summary>Appends the ids for one pre-token given as UTF-8 bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loop: skip the slow first JIT tier
    public void EncodeWord(ReadOnlySpan<byte> utf8, List<int> output)
    {
        if (utf8.Length == 0)
        {
            return;
        }
        if (_ignoreMerges && TryWholeWord(utf8, out int wholeId))
        {
            output.Add(wholeId);
            return;
        }
        if (utf8.Length == 1)
        {
            output.Add(_byteToId[utf8[0]]);
            return;
        }
        if (utf8.Length <= ShortWordBytes)
        {
            MergeShortWord(utf8, output);
            return;
        }
        int n = utf8.Length;
        var ids = new int[n];
        var prev = new int[n];
        var next = new int[n];
        var removed = new bool[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = _byteToId[utf8[i]];
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        // Element: (newId << 32 | pos); priority: (rank << 32 | pos), so the lowest rank, then leftmost, comes first.
        var queue = new PriorityQueue<long, long>(n);
        for (int i = 0; i + 1 < n; i++)
        {
            Push(queue, ids[i], ids[i + 1], i);
        }
        while (queue.TryDequeue(out long element, out _))
        {
            int pos = (int)(element & 0xFFFFFFFF);
            int newId = (int)(element >> 32);
            if (removed[pos] || next[pos] < 0)
            {
                continue;
            }
            int right = next[pos];
            if (!_merges.TryGetValue(Key(ids[pos], ids[right]), out var merge) || merge.NewId != newId)
            {
                continue; // stale candidate
            }
            ids[pos] = newId;
            removed[right] = true;
            next[pos] = next[right];
            if (next[right] >= 0)
            {
                prev[next[right]] = pos;
            }
            if (prev[pos] >= 0)
            {
                Push(queue, ids[prev[pos]], ids[pos], prev[pos]);
            }
            if (next[pos] >= 0)
            {
                Push(queue, ids[pos], ids[next[pos]], pos);
            }
        }
        for (int i = 0; i >= 0; i = next[i])
        {
            output.Add(ids[i]);
        }
    }

    /// <summary>For short words, the same result without a heap: Hugging Face's heap never applies a stale candidate
    /// (a stale entry's result token always differs from the current pair's, since a symbol's right neighbour only
    /// grows), so its order is exactly "lowest rank first, leftmost on ties" over the current pairs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // hot loop: skip the slow first JIT tier
    private void MergeShortWord(ReadOnlySpan<byte> utf8, List<int> output)
    {
        int n = utf8.Length;
        Span<int> ids = stackalloc int[n];
        Span<int> ranks = stackalloc int[n];
        Span<int> results = stackalloc int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = _byteToId[utf8[i]];
        }
        for (int i = 0; i + 1 < n; i++)
        {
            LookupPair(ids[i], ids[i + 1], out ranks[i], out results[i]);
        }
        while (n > 1)
        {
            int best = -1;
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < n; i++)
            {
                if (ranks[i] < bestRank)
                {
                    bestRank = ranks[i];
                    best = i;
                }
            }
            if (best < 0)
            {
                break;
            }
            ids[best] = results[best];
            for (int i = best + 1; i + 1 < n; i++)
            {
                ids[i] = ids[i + 1];
                ranks[i] = ranks[i + 1];
                results[i] = results[i + 1];
            }
            n--;
            if (best > 0)
            {
                LookupPair(ids[best - 1], ids[best], out ranks[best - 1], out results[best - 1]);
            }
            if (best + 1 < n)
            {
                LookupPair(ids[best], ids[best + 1], out ranks[best], out results[best]);
            }
        }
        for (int i = 0; i < n; i++)
        {
            output.Add(ids[i]);
        }
    }

    private void LookupPair(int left, int right, out int rank, out int result)
    {
        if (_merges.TryGetValue(Key(left, right), out var merge))
        {
            (rank, result) = merge;
        }
        else
        {
            (rank, result) = (int.MaxValue, -1);
        }
    }

    private void Push(PriorityQueue<long, long> queue, int left, int right, int pos)
    {
        if (_merges.TryGetValue(Key(left, right), out var merge))
        {
            queue.Enqueue(((long)merge.NewId << 32) | (uint)pos, ((long)merge.Rank << 32) | (uint)pos);
        }
    }

    private bool TryWholeWord(ReadOnlySpan<byte> utf8, out int id)
    {
        Span<char> chars = utf8.Length <= 256 ? stackalloc char[utf8.Length] : new char[utf8.Length];
        for (int i = 0; i < utf8.Length; i++)
        {
            chars[i] = ByteLevel.ByteToChar[utf8[i]];
        }
        return _vocabBySpan.TryGetValue(chars, out id);
    }
}
