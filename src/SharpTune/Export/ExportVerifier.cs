using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Tokenization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>How closely llama.cpp's logits must follow ours, relative to the spread of our logits (their standard
/// deviation over the vocabulary, averaged over positions), so that one tolerance serves small and large models.
/// A greedy token may differ only where our own top two logits are within <see cref="TieMargin"/> (a near tie
/// that rounding may flip); <see cref="MaxLogitError"/> bounds max |llama.cpp − ours|; <see cref="MinAgreement"/>
/// is the share of positions whose argmax must agree; <see cref="MinCorrelation"/> bounds the Pearson correlation of
/// the two logit vectors (averaged over positions) from below. Argmax agreement says little for quantized files of
/// untrained models, whose logits are nearly flat; the correlation still separates quantization noise (≥ 0.9) from a
/// file llama.cpp reads wrongly (≈ 0).</summary>
public sealed record Tolerance(string Name, double MaxLogitError, double TieMargin, double MinAgreement, double MinCorrelation = 0)
{
    /// <summary>Measured on the tiny models with an adapter (relative max errors: f32 1.7e-6, f16 0.0024, bf16 0.019,
    /// q8_0 0.06-0.1, q6_k 0.05-0.09, q4_k_m 0.3-0.65; correlations ≥ 0.9997 for q8_0/q6_k, ≥ 0.99 for q4_k_m;
    /// docs/export.md), with margins of 4-100x. The maximum over a large vocabulary grows with its size (q8_0 of a
    /// random 1.5B model: 0.38), so quantized files are bounded by the correlation, the maximum only loosely.</summary>
    public static Tolerance For(string quant) => quant switch
    {
        "f32" => new("f32 (exact)", 2e-4, 4e-4, 1),
        "f16" => new("f16 (exact up to near ties)", 0.02, 0.04, 1),
        "bf16" => new("bf16 (exact up to near ties)", 0.1, 0.2, 1),
        "q8_0" => new("q8_0", 1.0, 1.0, 0, MinCorrelation: 0.99),
        _ => new($"{quant} (llama.cpp quantizer)", double.PositiveInfinity, double.PositiveInfinity, 0, MinCorrelation: 0.9),
    };
}

/// <summary>
/// Checks a written GGUF in llama.cpp against our engine on the same model (base + adapter): tokenization of probe
/// texts, the chat template and the prompts it renders, the stop tokens, and the greedy tokens of a chat prompt
/// (teacher-forced: llama.cpp scores our sequence, so one early difference does not hide the rest).
/// A difference throws a <see cref="SharpTuneException"/> that names it.
/// </summary>
public static class ExportVerifier
{
    public static readonly IReadOnlyList<string> ProbeTexts =
    [
        "Hello world! How are you today?",
        "A 65-year-old man weighs 72 kg; his creatinine is 1.4 mg/dL. Estimate the clearance.",
        "  leading spaces, trailing spaces   \n\n\tand tabs\r\nCRLF",
        "numbers 1234567 3.14159 and 2026-11-29",
        "def f(x):\n    return x ** 2  # square\n",
        "Ünïcödé façade — naïve café, 你好世界, こんにちは, Привет, 🙂🚀",
        "don't can't we'll I'M THEY'RE",
    ];

    public static IReadOnlyList<IReadOnlyList<ChatMessage>> ProbeConversations =>
    [
        [new("user", "What is 17 × 23?")],
        [new("system", "You are a careful clinician."), new("user", "Estimate the BMI of a 70 kg, 1.75 m adult.")],
        [new("user", "Hi"), new("assistant", "Hello! How can I help?"), new("user", "Convert 5 miles to km.")],
    ];

    /// <summary>Runs every check; returns one line per check passed.</summary>
    public static List<string> Verify(PretrainedModel ours, LlamaCpp theirs, Tolerance tolerance, int steps = 32)
    {
        var lines = new List<string>();
        var tok = ours.Tokenizer;

        // tokenization
        var texts = ProbeTexts.ToList();
        texts.AddRange(SpecialTokenTexts(tok));
        foreach (var text in texts)
        {
            int[] a = tok.Encode(text, addSpecialTokens: true), b = theirs.Tokenize(text, addSpecial: true);
            if (!a.SequenceEqual(b)) throw Mismatch("tokenization", $"text {Show(text)}: ours [{Ids(a)}], llama.cpp [{Ids(b)}] (first difference at token {FirstDifference(a, b)})");
        }
        lines.Add($"tokenization: {texts.Count} probe texts give identical ids (BOS: {(tok.AddBosToken ? "added" : "not added")} by both)");

        // chat template
        theirs.Metadata.TryGetValue("tokenizer.chat_template", out var template);
        if (template != ours.Tokenizer.ChatTemplateSource)
            throw Mismatch("chat template", template is null ? "the GGUF has no tokenizer.chat_template" : "the GGUF's tokenizer.chat_template differs from the model's chat template");
        int[] prompt;
        if (ours.ChatTemplate is not null)
        {
            foreach (var conversation in ProbeConversations)
            {
                string rendered = ours.RenderChat(conversation);
                int[] a = ours.EncodeChat(conversation), b = theirs.Tokenize(rendered, addSpecial: false);
                if (!a.SequenceEqual(b)) throw Mismatch("chat prompt tokens", $"rendered {Show(rendered)}: ours [{Ids(a)}], llama.cpp [{Ids(b)}]");
            }
            lines.Add($"chat template: stored verbatim; {ProbeConversations.Count} rendered conversations tokenize identically");
            prompt = ours.EncodeChat(ProbeConversations[0]);
        }
        else
        {
            lines.Add("chat template: none in the model, none in the GGUF");
            prompt = ours.EncodeText(ProbeTexts[0]);
        }

        // stop tokens
        var missing = ours.EosTokenIds.Where(id => !theirs.IsEndOfGeneration(id)).ToList();
        if (missing.Count > 0)
            throw Mismatch("stop tokens", $"{string.Join(", ", missing.Select(id => $"{id} {Show(tok.IdToToken(id) ?? "?")}"))} end generation in our engine but not in llama.cpp");
        lines.Add($"stop tokens: {string.Join(", ", ours.EosTokenIds.Select(id => tok.IdToToken(id)))} end generation in llama.cpp too");

        lines.Add(CompareGreedy(ours, theirs, prompt, steps, tolerance));
        return lines;
    }

    /// <summary>Our greedy continuation of <paramref name="prompt"/>, then llama.cpp's logits on the same sequence.</summary>
    static string CompareGreedy(PretrainedModel ours, LlamaCpp theirs, int[] prompt, int steps, Tolerance tolerance)
    {
        var generator = new TokenGenerator(ours.CausalLM);
        var output = generator.Generate([prompt], new GenerationOptions(MaxNewTokens: steps, Sampling: new SamplingOptions(Temperature: 0)))[0].Ids;
        int[] sequence = [.. prompt, .. output];
        float[][] ourLogits;
        using (no_grad())
        using (NewDisposeScope())
        {
            var ids = tensor(sequence.Select(i => (long)i).ToArray(), int64).unsqueeze(0).to(ours.CausalLM.Device);
            var logits = ours.CausalLM.Forward(ids)[0].narrow(0, prompt.Length - 1, output.Length).to(float32).cpu();
            ourLogits = Enumerable.Range(0, output.Length).Select(i => logits[i].data<float>().ToArray()).ToArray();
        }
        var theirLogits = theirs.Logits(sequence);

        int agree = 0, nearTies = 0;
        double maxError = 0, correlation = 0;
        double scale = ourLogits.Average(Std);
        for (int i = 0; i < output.Length; i++)
        {
            var a = ourLogits[i];
            var b = theirLogits[prompt.Length - 1 + i];
            if (b.Any(v => !float.IsFinite(v))) throw Mismatch("logits", $"llama.cpp gives non-finite logits at generated token {i}");
            for (int v = 0; v < a.Length; v++) maxError = Math.Max(maxError, Math.Abs(a[v] - b[v]) / scale);
            correlation += Correlation(a, b) / output.Length;
            int ourTop = ArgMax(a), theirTop = ArgMax(b);
            if (ourTop == theirTop) { agree++; continue; }
            if (tolerance.MinAgreement < 1) continue;                     // quantized: counted against MinAgreement below
            if ((a[ourTop] - a[theirTop]) / scale <= tolerance.TieMargin) nearTies++;
            else
                throw Mismatch("greedy tokens", $"at generated token {i} ours is {ourTop} {Show(ours.Tokenizer.IdToToken(ourTop) ?? "")}, llama.cpp's is {theirTop} "
                    + $"{Show(ours.Tokenizer.IdToToken(theirTop) ?? "")} (our logits differ by {(a[ourTop] - a[theirTop]) / scale:G3} of their spread, not a near tie)");
        }
        if (maxError > tolerance.MaxLogitError)
            throw Mismatch("logits", $"max |llama.cpp − ours| = {maxError:G3} of the logits' spread (std {scale:G3}) over {output.Length} positions, tolerance for {tolerance.Name} is {tolerance.MaxLogitError}");
        if (correlation < tolerance.MinCorrelation)
            throw Mismatch("logits", $"llama.cpp's logits correlate with ours at {correlation:0.####} (mean over {output.Length} positions), {tolerance.Name} needs {tolerance.MinCorrelation}");
        double share = (double)(tolerance.MinAgreement >= 1 ? agree + nearTies : agree) / output.Length;
        if (share < tolerance.MinAgreement)
            throw Mismatch("greedy tokens", $"llama.cpp's argmax agrees with ours at {agree}/{output.Length} positions, {tolerance.Name} needs {tolerance.MinAgreement:P0}");
        return $"greedy tokens ({tolerance.Name}): {agree}/{output.Length} identical{(nearTies > 0 ? $" ({nearTies} near ties)" : "")}, max |logit difference| {maxError:G3} of the logits' spread (std {scale:G3}), correlation {correlation:0.#####}";
    }

    /// <summary>Texts with the tokenizer's added tokens inside running text (where splitting goes wrong first).</summary>
    static IEnumerable<string> SpecialTokenTexts(Tokenizer tok)
    {
        var specials = new[] { tok.BosToken, tok.EosToken }.OfType<string>().Distinct().ToList();
        if (specials.Count > 0) yield return $"before{string.Join(" middle ", specials)}after";
    }

    static double Std(float[] v)
    {
        double mean = v.Average(x => (double)x);
        return Math.Sqrt(v.Average(x => (x - mean) * (x - mean)));
    }

    static double Correlation(float[] a, float[] b)
    {
        double ma = a.Average(x => (double)x), mb = b.Average(x => (double)x), sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double da = a[i] - ma, db = b[i] - mb;
            sab += da * db; saa += da * da; sbb += db * db;
        }
        return sab / Math.Sqrt(saa * sbb);
    }

    static int ArgMax(float[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    static int FirstDifference(int[] a, int[] b)
    {
        int i = 0;
        while (i < a.Length && i < b.Length && a[i] == b[i]) i++;
        return i;
    }

    static string Ids(int[] ids) => ids.Length <= 24 ? string.Join(" ", ids) : string.Join(" ", ids.Take(24)) + " …";
    static string Show(string s) => System.Text.Json.JsonSerializer.Serialize(s.Length > 80 ? s[..80] + "…" : s,
        new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    static SharpTuneException Mismatch(string what, string detail) =>
        new($"export verification failed: {what} differ between llama.cpp and SharpTune: {detail} (--no-verify skips this check)");
}
