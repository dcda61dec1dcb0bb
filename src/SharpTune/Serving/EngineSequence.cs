using System.Threading.Channels;
using SharpTune.Generation;
using SharpTune.Tokenization;
using TorchSharp;

namespace SharpTune.Serving;

/// <summary>What one choice of a request streams: new answer text, new reasoning text, the chosen token (with its
/// log-probability when asked), and at the end the finish reason with the count of generated tokens.</summary>
public sealed record ChoiceUpdate(int Index, string Content, string Reasoning, TokenLogprob? Logprob, FinishReason? FinishReason = null, int GeneratedTokens = 0);

/// <summary>A generated token, its text and its log-probability under the model (before temperature and filters).</summary>
public sealed record TokenLogprob(int Id, string Text, double Logprob);

/// <summary>One sequence of the batch: its prompt, settings, KV slots and the text it has formed so far.
/// Everything but the constructor runs on the engine's thread.</summary>
internal sealed class EngineSequence
{
    static long _nextId;

    public long Id { get; } = Interlocked.Increment(ref _nextId);
    public required int[] Prompt { get; init; }
    public required int ChoiceIndex { get; init; }
    public required int MaxTokens { get; init; }
    public required int AdapterIndex { get; init; }       // -1: the base model
    public required SamplingOptions Sampling { get; init; }
    public required IReadOnlySet<int> EosIds { get; init; }
    public required IReadOnlyList<string> Stops { get; init; }
    public required bool Logprobs { get; init; }
    public required bool SkipSpecialTokens { get; init; }
    /// <summary>Null: no reasoning split (raw completions); otherwise whether the prompt opened &lt;think&gt;.</summary>
    public required bool? StartsInReasoning { get; init; }
    public required ChannelWriter<ChoiceUpdate> Output { get; init; }
    public required CancellationToken Cancellation { get; init; }

    // engine-side state
    public int[] Slots = [];
    public int Cached;                    // tokens whose keys and values are in Slots
    public int NextToken = -1;            // sampled, not yet fed
    public readonly List<int> Generated = [];
    public FinishReason? Finish;
    public Sampler? Sampler;              // null: plain greedy, done for the whole batch at once
    public torch.Tensor? Seen;            // [1, V] bool, for the repetition penalty
    TextStream? _text;
    ReasoningSplitter? _reasoning;
    string _content = "", _thought = "";

    public int SlotsNeeded => Prompt.Length + MaxTokens;

    public void Start(Tokenizer tokenizer)
    {
        _text = new TextStream(new StreamingDecoder(tokenizer, SkipSpecialTokens), Stops, Split);
        _reasoning = StartsInReasoning is { } inside ? new ReasoningSplitter(inside) : null;
    }

    /// <summary>Takes a chosen token; sets <see cref="Finish"/> when it ends the sequence.</summary>
    public void Accept(int id, double? logprob, Tokenizer tokenizer)
    {
        Generated.Add(id);
        NextToken = id;
        bool eos = EosIds.Contains(id);
        bool more = eos || _text!.Add(id);   // the EOS that ends a row stays out of its text
        var token = logprob is { } lp ? new TokenLogprob(id, tokenizer.Decode([id], SkipSpecialTokens), lp) : null;
        Publish(token, null);
        if (eos) Finish = FinishReason.Eos;
        else if (!more) Finish = FinishReason.Stop;
        else if (Generated.Count >= MaxTokens) Finish = FinishReason.Length;
    }

    /// <summary>Flushes held-back text and sends the final update.</summary>
    public void Complete(FinishReason reason)
    {
        Finish = reason;
        if (reason != FinishReason.Cancelled)
        {
            _text?.Finish();
            if (_reasoning?.Flush() is { } rest) Add(rest);
        }
        Publish(null, reason);
    }

    void Split(string piece)
    {
        if (_reasoning is null) { _content += piece; return; }
        foreach (var segment in _reasoning.Push(piece)) Add(segment);
    }

    void Add(ReasoningSplitter.Segment s)
    {
        if (s.IsReasoning) _thought += s.Text; else _content += s.Text;
    }

    void Publish(TokenLogprob? token, FinishReason? finish)
    {
        if (_content.Length == 0 && _thought.Length == 0 && token is null && finish is null) return;
        Output.TryWrite(new ChoiceUpdate(ChoiceIndex, _content, _thought, token, finish, Generated.Count));
        _content = _thought = "";
    }
}
