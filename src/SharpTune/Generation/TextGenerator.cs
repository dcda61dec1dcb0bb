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
        var rows = prompts.Select((_, row) => new TextStream(new StreamingDecoder(tokenizer, options.SkipSpecialTokens), options.StopStrings ?? [],
            piece => onText?.Invoke(row, piece))).ToArray();
        var eos = (options.EosTokenIds ?? []).ToHashSet();
        var ids = _tokens.Generate(prompts, options, (row, token) =>
            !ct.IsCancellationRequested && (eos.Contains(token) || rows[row].Add(token)));   // the EOS that ends a row is in its ids, not in its text
        foreach (var r in rows) r.Finish();
        return prompts.Select((p, row) => new GenerationResult(p, ids[row].Ids, rows[row].Text,
            rows[row].Stopped ? FinishReason.Stop : ct.IsCancellationRequested && ids[row].FinishReason != FinishReason.Length ? FinishReason.Cancelled : ids[row].FinishReason)).ToList();
    }
}
