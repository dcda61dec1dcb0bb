using System.CommandLine;
using SharpTune.Generation;
using SharpTune.Models;

namespace SharpTune.Cli.Commands;

/// <summary>--temperature, --top-k, --top-p, --min-p, --repetition-penalty, --seed, --max-new-tokens, --stop.
/// Unset flags fall back to the model's generation_config.json (greedy when it does not ask for sampling).</summary>
sealed class SamplingFlags
{
    readonly Option<double?> _temperature = new("--temperature", "-t") { Description = "0 = greedy; default: generation_config.json's" };
    readonly Option<int?> _topK = new("--top-k") { Description = "Keep the k most likely tokens (0 = off)" };
    readonly Option<double?> _topP = new("--top-p") { Description = "Nucleus sampling: keep tokens up to this total probability (1 = off)" };
    readonly Option<double> _minP = new("--min-p") { Description = "Drop tokens below min-p x the top probability (0 = off)" };
    readonly Option<double> _repetitionPenalty = new("--repetition-penalty") { Description = "> 1 discourages repeating tokens", DefaultValueFactory = _ => 1.0 };
    readonly Option<long?> _seed = new("--seed") { Description = "Seed for reproducible sampling" };
    readonly Option<int> _maxNewTokens = new("--max-new-tokens", "-n") { Description = "Most tokens to generate", DefaultValueFactory = _ => 512 };
    readonly Option<string[]> _stop = new("--stop") { Description = "Stop when this text appears (repeatable)", AllowMultipleArgumentsPerToken = false };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { _temperature, _topK, _topP, _minP, _repetitionPenalty, _seed, _maxNewTokens, _stop }) cmd.Options.Add(o);
    }

    public GenerationOptions Resolve(ParseResult p, PretrainedModel model)
    {
        var d = model.Defaults;
        bool sampleByDefault = d.DoSample == true;
        double temperature = p.GetValue(_temperature) ?? (sampleByDefault ? d.Temperature ?? 1.0 : 0);
        var sampling = new SamplingOptions(
            Temperature: temperature,
            TopK: p.GetValue(_topK) ?? (sampleByDefault ? d.TopK ?? 0 : 0),
            TopP: p.GetValue(_topP) ?? (sampleByDefault ? d.TopP ?? 1 : 1),
            MinP: p.GetValue(_minP),
            RepetitionPenalty: p.GetValue(_repetitionPenalty),
            Seed: p.GetValue(_seed));
        int max = p.GetValue(_maxNewTokens);
        if (max <= 0) throw new SharpTuneException($"--max-new-tokens must be positive, got {max}");
        return new GenerationOptions(max, sampling, model.EosTokenIds, p.GetValue(_stop) ?? []);
    }
}
