using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Tokenization;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Serving;

/// <summary>How much the engine takes on at once.</summary>
/// <param name="KvTokens">KV-cache budget in tokens, over all sequences in the batch (bytes: <see cref="KvPool.BytesPerToken"/> each).
/// A sequence reserves prompt + max_tokens slots when it joins.</param>
/// <param name="MaxBatch">Most sequences decoded together.</param>
/// <param name="MaxQueue">Most sequences waiting to join; more are refused (HTTP 429).</param>
/// <param name="MaxPrefillTokens">Most (padded) prompt tokens prefilled in one forward pass; a longer prompt goes alone.</param>
public sealed record EngineOptions(int KvTokens = 32768, int MaxBatch = 128, int MaxQueue = 256, int MaxPrefillTokens = 4096);

/// <summary>A sequence in the batch, as seen after a decode step.</summary>
public sealed record ActiveSequence(long Id, int Generated, CancellationToken Cancellation);

/// <summary>A sequence that left: why, and how many tokens it read and wrote.</summary>
public sealed record FinishedSequence(long Id, FinishReason Reason, int PromptTokens, int GeneratedTokens);

/// <summary>
/// Continuous batching: one thread owns the model and loops — waiting sequences join while the KV budget and
/// the batch size allow (their prompts prefilled together), then every active sequence advances one token in one
/// forward pass, and finished or cancelled sequences leave, giving back their KV slots. A request never waits
/// for another to finish; it waits only for memory.
/// </summary>
public sealed class BatchEngine : IDisposable
{
    readonly CausalLM _model;
    readonly Tokenizer _tokenizer;
    readonly AdapterRouter? _adapters;
    readonly KvPool _pool;
    readonly Queue<EngineSequence> _waiting = new();
    readonly List<EngineSequence> _active = [];
    readonly SemaphoreSlim _wake = new(0);
    readonly Thread _thread;
    volatile bool _stopping;

    public EngineOptions Options { get; }

    /// <summary>Raised on the engine's thread after each decode step (a handler that blocks holds the engine).</summary>
    public event Action<IReadOnlyList<ActiveSequence>>? Stepped;
    /// <summary>Raised on the engine's thread when a sequence leaves the batch.</summary>
    public event Action<FinishedSequence>? SequenceFinished;

    public BatchEngine(CausalLM model, Tokenizer tokenizer, AdapterRouter? adapters, EngineOptions options)
    {
        if (options.MaxBatch < 1) throw new SharpTuneException($"--max-batch must be at least 1, got {options.MaxBatch}");
        if (options.MaxQueue < 0) throw new SharpTuneException($"--max-queue must be at least 0, got {options.MaxQueue}");
        if (options.MaxPrefillTokens < 1) throw new SharpTuneException($"the prefill size must be at least 1 token, got {options.MaxPrefillTokens}");
        _model = model; _tokenizer = tokenizer; _adapters = adapters; Options = options;
        _pool = new KvPool(model.Config, options.KvTokens, model.DType, model.Device);
        _freeKv = _pool.FreeSlots;
        _thread = new Thread(Loop) { IsBackground = true, Name = "sharptune-batch-engine" };
        _thread.Start();
    }

    /// <summary>Sequences waiting for room in the batch.</summary>
    public int Waiting { get { lock (_waiting) return _waiting.Count; } }
    /// <summary>Sequences in the batch (as of the last step).</summary>
    public int Running => _running;
    /// <summary>KV-cache token slots not held by any sequence.</summary>
    public int FreeKvTokens => _freeKv;
    volatile int _running, _freeKv;

    /// <summary>Most tokens (prompt + answer) one sequence may hold.</summary>
    public int MaxSequenceTokens => _pool.Capacity;

    /// <summary>Queues sequences to join the batch together or not at all; false when the queue is full.</summary>
    internal bool TryEnqueue(IReadOnlyList<EngineSequence> sequences)
    {
        lock (_waiting)
        {
            if (_stopping) throw new ObjectDisposedException(nameof(BatchEngine));
            if (_waiting.Count + sequences.Count > Options.MaxQueue) return false;
            foreach (var s in sequences) _waiting.Enqueue(s);
        }
        _wake.Release();
        return true;
    }

    void Loop()
    {
        using var noGrad = torch.no_grad();
        while (!_stopping)
        {
            try
            {
                Retire();
                var joining = Admit();
                if (joining.Count > 0) Prefill(joining);
                if (_active.Count > 0) Decode();
                Retire();
            }
            catch (Exception e)
            {
                // A failed step (e.g. out of memory) fails the sequences in it; the engine goes on with the next ones.
                foreach (var s in _active) { ReleaseMemory(s); s.Output.TryComplete(e); }
                _active.Clear();
            }
            _running = _active.Count;
            _freeKv = _pool.FreeSlots;
            if (_active.Count == 0)
            {
                bool idle;
                lock (_waiting) idle = _waiting.Count == 0;
                if (idle) _wake.Wait();
            }
        }
    }

    /// <summary>Moves waiting sequences into the batch, first come first served, while memory and the batch size allow.</summary>
    List<EngineSequence> Admit()
    {
        var joining = new List<EngineSequence>();
        int prefillLength = 0;
        lock (_waiting)
        {
            while (_waiting.TryPeek(out var next))
            {
                if (next.Cancellation.IsCancellationRequested)
                {
                    _waiting.Dequeue();
                    Finish(next, FinishReason.Cancelled);
                    continue;
                }
                int longest = Math.Max(prefillLength, next.Prompt.Length);
                if (_active.Count + joining.Count >= Options.MaxBatch || next.SlotsNeeded > _pool.FreeSlots
                    || (joining.Count > 0 && longest * (joining.Count + 1) > Options.MaxPrefillTokens)) break;
                _waiting.Dequeue();
                next.Slots = _pool.Take(next.SlotsNeeded);
                prefillLength = longest;
                joining.Add(next);
            }
        }
        return joining;
    }

    /// <summary>One forward pass over the joining prompts (right-padded), then each one's first token.</summary>
    void Prefill(List<EngineSequence> joining)
    {
        using var scope = NewDisposeScope();
        _active.AddRange(joining);   // from here on a failure releases their memory too
        int B = joining.Count, T = joining.Max(s => s.Prompt.Length);
        var ids = new long[B * T];
        var write = new long[B * T];   // padding goes to scratch slot 0
        var lengths = new long[B];
        for (int b = 0; b < B; b++)
        {
            var s = joining[b];
            s.Start(_tokenizer);
            for (int t = 0; t < s.Prompt.Length; t++)
            {
                ids[b * T + t] = s.Prompt[t];
                write[b * T + t] = s.Slots[t];
            }
            lengths[b] = s.Prompt.Length;
            s.Cached = s.Prompt.Length;
        }
        var device = _model.Device;
        var writeSlots = tensor(write, device: device);
        var lens = tensor(lengths, device: device).view(B, 1, 1);
        var col = arange(T, device: device);
        // row b, query t sees keys s <= t of its own prompt (padded queries see the whole prompt; their output is unused)
        var mask = (col.view(1, 1, T) <= col.view(1, T, 1)) & (col.view(1, 1, T) < lens);      // [B, T, T]
        var positions = col.view(1, T).expand(B, T);
        _adapters?.Route(joining.Select(s => s.AdapterIndex).ToList());
        var hidden = _model.Hidden(tensor(ids, [B, T], device: device), positions, _pool.View(writeSlots, writeSlots, B, T), mask.unsqueeze(1));
        var last = tensor(lengths.Select((n, b) => b * T + n - 1).ToArray(), device: device);
        var h = hidden.view(B * T, -1).index_select(0, last);                                     // [B, H]
        foreach (var s in joining)
            if (s.Sampling.RepetitionPenalty != 1)
            {
                s.Seen = zeros([1, _model.Config.VocabSize], ScalarType.Bool, device).DetachFromDisposeScope();
                s.Seen.index_fill_(1, tensor(s.Prompt.Select(i => (long)i).ToArray(), device: device), true);
            }
        ChooseNext(joining, h);
    }

    /// <summary>Every active sequence feeds its last token: one forward pass, one token each.</summary>
    void Decode()
    {
        using var scope = NewDisposeScope();
        var rows = _active.Where(s => s.Finish is null).ToList();
        if (rows.Count == 0) return;
        int B = rows.Count, S = rows.Max(s => s.Cached + 1);
        var ids = new long[B];
        var write = new long[B];
        var positions = new long[B];
        var read = new long[B * S];
        var lengths = new long[B];
        for (int b = 0; b < B; b++)
        {
            var s = rows[b];
            ids[b] = s.NextToken;
            positions[b] = s.Cached;
            write[b] = s.Slots[s.Cached];
            s.Cached++;
            lengths[b] = s.Cached;
            for (int t = 0; t < s.Cached; t++) read[b * S + t] = s.Slots[t];
        }
        var device = _model.Device;
        var mask = arange(S, device: device).view(1, S) < tensor(lengths, device: device).view(B, 1);   // [B, S]
        _adapters?.Route(rows.Select(s => s.AdapterIndex).ToList());
        var cache = _pool.View(tensor(write, device: device), tensor(read, device: device), B, S);
        var hidden = _model.Hidden(tensor(ids, [B, 1], device: device), tensor(positions, [B, 1], device: device), cache, mask.view(B, 1, 1, S));
        ChooseNext(rows, hidden.view(B, -1));
        Stepped?.Invoke(_active.Select(s => new ActiveSequence(s.Id, s.Generated.Count, s.Cancellation)).ToList());
    }

    /// <summary>Samples each row's next token from its hidden state h [B, H]: greedy rows in one argmax for the
    /// batch (the one host sync), unseeded rows with the same settings in one sampler call, and rows with a seed or
    /// a repetition penalty with their own sampler (its generator and seen-token mask are per request).</summary>
    void ChooseNext(List<EngineSequence> rows, Tensor h)
    {
        var logits = F.linear(h, _model.LmHead).to(float32);                                    // [B, V]
        var chosen = logits.argmax(-1).cpu().data<long>().ToArray();
        var sampled = Enumerable.Range(0, rows.Count).Where(b => !(rows[b].Sampling.Greedy && rows[b].Sampling.RepetitionPenalty == 1)).ToList();
        foreach (var group in sampled.Where(b => rows[b].Sampling is { Seed: null, RepetitionPenalty: 1 }).GroupBy(b => rows[b].Sampling))
        {
            using var sampler = new Sampler(group.Key);
            var members = group.ToArray();
            var picked = sampler.Next(logits.index_select(0, tensor(members.Select(b => (long)b).ToArray(), device: logits.device)), null).cpu().data<long>().ToArray();
            for (int i = 0; i < members.Length; i++) chosen[members[i]] = picked[i];
        }
        foreach (int b in sampled.Where(b => rows[b].Sampling is not { Seed: null, RepetitionPenalty: 1 }))
        {
            var s = rows[b];
            s.Sampler ??= new Sampler(s.Sampling);
            chosen[b] = s.Sampler.Next(logits.narrow(0, b, 1), s.Seen).cpu().data<long>()[0];
        }
        double[]? logprobs = null;
        if (rows.Any(s => s.Logprobs))
        {
            var picked = tensor(chosen, device: logits.device).view(-1, 1);
            logprobs = (logits.gather(1, picked).squeeze(1) - logits.logsumexp(-1)).to(float64).cpu().data<double>().ToArray();
        }
        for (int b = 0; b < rows.Count; b++)
        {
            var s = rows[b];
            int id = (int)chosen[b];
            s.Seen?.index_fill_(1, tensor(new long[] { id }, device: logits.device), true);
            s.Accept(id, s.Logprobs ? logprobs![b] : null, _tokenizer);
        }
    }

    /// <summary>Finished and cancelled sequences leave the batch and give back their memory.</summary>
    void Retire()
    {
        for (int i = _active.Count - 1; i >= 0; i--)
        {
            var s = _active[i];
            var reason = s.Finish ?? (s.Cancellation.IsCancellationRequested ? FinishReason.Cancelled : null);
            if (reason is null) continue;
            _active.RemoveAt(i);
            Finish(s, reason.Value);
        }
    }

    void Finish(EngineSequence s, FinishReason reason)
    {
        ReleaseMemory(s);
        s.Complete(reason);
        SequenceFinished?.Invoke(new FinishedSequence(s.Id, reason, s.Prompt.Length, s.Generated.Count));
    }

    void ReleaseMemory(EngineSequence s)
    {
        if (s.Slots.Length > 0) _pool.Return(s.Slots);
        s.Slots = [];
        s.Sampler?.Dispose();
        s.Seen?.Dispose();
    }

    public void Dispose()
    {
        lock (_waiting) _stopping = true;
        _wake.Release();
        _thread.Join();
        lock (_waiting)
            while (_waiting.TryDequeue(out var s)) s.Output.TryComplete(new ObjectDisposedException(nameof(BatchEngine)));
        foreach (var s in _active) { ReleaseMemory(s); s.Output.TryComplete(new ObjectDisposedException(nameof(BatchEngine))); }
        _active.Clear();
        _adapters?.Dispose();
        _pool.Dispose();
        _wake.Dispose();
    }
}
