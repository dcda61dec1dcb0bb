using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Generation;

/// <summary>Text generation: token generation plus incremental decoding, stop strings and streaming.</summary>
public sealed class TextGenerator(CausalLM model, Tokenizer tokenizer)
{
    readonly TokenGenerator _tokens = new(model);

    public GenerationTimings? LastTimings => _tokens.LastTimings;

    /// <summary>Generates for each prompt. <paramref name="onText"/>(row, newText) streams decoded text as it forms.
    /// With SkipSpecialTokens off, special tokens such as &lt;think&gt; show in the text; the closing EOS never does.
    /// Cancelling <paramref name="ct"/> ends every row after its current token, with finish reason Cancelled.</summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<int[]> prompts, GenerationOptions options, Action<int, string>? onText = null,
        CancellationToken ct = default)
    {
        var rows = prompts.Select((_, row) => new RowText(new StreamingDecoder(tokenizer, options.SkipSpecialTokens), options.StopStrings ?? [],
            piece => onText?.Invoke(row, piece))).ToArray();
        var eos = (options.EosTokenIds ?? []).ToHashSet();
        var ids = _tokens.Generate(prompts, options, (row, token) =>
            !ct.IsCancellationRequested && (eos.Contains(token) || rows[row].Add(token)));   // the EOS that ends a row is in its ids, not in its text
        foreach (var r in rows) r.Finish();
        return prompts.Select((p, row) => new GenerationResult(p, ids[row].Ids, rows[row].Text,
            rows[row].Stopped ? FinishReason.Stop : ct.IsCancellationRequested && ids[row].FinishReason != FinishReason.Length ? FinishReason.Cancelled : ids[row].FinishReason)).ToList();
    }

    /// <summary>One row's text as it forms: decoded incrementally, cut at the earliest stop string, and streamed
    /// without ever emitting the start of a stop string that may still complete.</summary>
    sealed class RowText(StreamingDecoder decoder, IReadOnlyList<string> stops, Action<string> emit)
    {
        readonly System.Text.StringBuilder _text = new();
        readonly int _holdBack = stops.Count == 0 ? 0 : stops.Max(s => s.Length) - 1;
        int _streamed;

        public bool Stopped { get; private set; }
        public string Text => _text.ToString();

        /// <summary>Adds a token; false when a stop string completed.</summary>
        public bool Add(int token)
        {
            Append(decoder.Push(token));
            return !Stopped;
        }

        public void Finish()
        {
            if (!Stopped) Append(decoder.Flush());
            Emit(_text.Length);
        }

        void Append(string piece)
        {
            if (piece.Length == 0 || Stopped) return;
            int searchFrom = Math.Max(0, _text.Length - _holdBack);
            _text.Append(piece);
            string window = _text.ToString(searchFrom, _text.Length - searchFrom);
            int cut = stops.Select(stop => window.IndexOf(stop, StringComparison.Ordinal)).Where(at => at >= 0).DefaultIfEmpty(-1).Min();
            if (cut >= 0)
            {
                _text.Length = searchFrom + cut;
                Stopped = true;
                Emit(_text.Length);
                return;
            }
            Emit(_text.Length - _holdBack);
        }

        void Emit(int upTo)
        {
            if (upTo <= _streamed) return;
            emit(_text.ToString(_streamed, upTo - _streamed));
            _streamed = upTo;
        }
    }
}
