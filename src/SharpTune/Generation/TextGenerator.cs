using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Generation;

/// <summary>Text generation: token generation plus incremental decoding, stop strings and streaming.</summary>
public sealed class TextGenerator(CausalLM model, Tokenizer tokenizer)
{
    readonly TokenGenerator _tokens = new(model);

    public GenerationTimings? LastTimings => _tokens.LastTimings;

    /// <summary>Generates for each prompt. <paramref name="onText"/>(row, newText) streams decoded text as it forms.
    /// With SkipSpecialTokens off, special tokens such as &lt;think&gt; show in the text; the closing EOS never does.</summary>
    public IReadOnlyList<GenerationResult> Generate(IReadOnlyList<int[]> prompts, GenerationOptions options, Action<int, string>? onText = null)
    {
        var stops = options.StopStrings ?? [];
        var decoders = prompts.Select(_ => new StreamingDecoder(tokenizer, options.SkipSpecialTokens)).ToArray();
        var texts = prompts.Select(_ => new System.Text.StringBuilder()).ToArray();
        var stoppedByString = new bool[prompts.Count];
        int longestStop = stops.Count == 0 ? 0 : stops.Max(s => s.Length);

        var eos = (options.EosTokenIds ?? []).ToHashSet();
        var ids = _tokens.Generate(prompts, options, (row, token) =>
        {
            if (eos.Contains(token)) return true;   // the EOS that ends a row is in its ids, not in its text
            string piece = decoders[row].Push(token);
            if (piece.Length == 0) return true;
            var text = texts[row];
            int searchFrom = Math.Max(0, text.Length - longestStop);
            text.Append(piece);
            foreach (var stop in stops)
            {
                int at = text.ToString(searchFrom, text.Length - searchFrom).IndexOf(stop, StringComparison.Ordinal);
                if (at < 0) continue;
                int cut = searchFrom + at;
                int before = text.Length - piece.Length;
                if (cut > before) onText?.Invoke(row, text.ToString(before, cut - before));
                text.Length = cut;
                stoppedByString[row] = true;
                return false;
            }
            onText?.Invoke(row, piece);
            return true;
        });

        return prompts.Select((p, row) => new GenerationResult(p, ids[row].Ids, texts[row].ToString(),
            stoppedByString[row] ? "stop" : ids[row].FinishReason)).ToList();
    }
}
