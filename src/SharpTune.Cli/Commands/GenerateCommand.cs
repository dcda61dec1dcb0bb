using System.CommandLine;
using System.Text.Json;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Cli.Commands;

static class GenerateCommand
{
    public static Command Create(TextWriter stdout)
    {
        var modelFlags = new ModelFlags();
        var json = CommonOptions.Json();
        var prompts = new Option<string[]>("--prompt", "-p") { Description = "Prompt text (repeat for a batch)", Required = true };
        var chat = new Option<bool>("--chat") { Description = "Wrap the prompt as a user message with the model's chat template" };
        var system = new Option<string?>("--system") { Description = "System message (with --chat)" };
        var sampling = new SamplingFlags();
        var cmd = new Command("generate", "Generate text from a prompt") { prompts, chat, system, json };
        modelFlags.AddTo(cmd);
        sampling.AddTo(cmd);
        cmd.SetAction(p =>
        {
            using var m = modelFlags.Load(p);
            var texts = p.GetValue(prompts)!;
            var format = modelFlags.TrainingPromptFormat(p);
            var ids = texts.Select(t => format is not null ? m.EncodeText(format.Prompt(t))
                : p.GetValue(chat) ? m.EncodeChat(Conversation(p.GetValue(system), t)) : m.EncodeText(t)).ToList();
            var options = sampling.Resolve(p, m);
            var generator = new TextGenerator(m.CausalLM, m.Tokenizer);
            bool stream = !p.GetValue(json) && texts.Length == 1;
            bool terminal = !Console.IsOutputRedirected && ReferenceEquals(stdout, Console.Out);
            // Reasoning tags are special tokens in some tokenizers: keep them in the text so the split can be shown.
            options = options with { SkipSpecialTokens = false };
            bool opens = ReasoningSplitter.PromptOpensReasoning(m.Tokenizer.Decode(ids[0], skipSpecialTokens: false));
            var display = stream ? new ReasoningDisplay(stdout, terminal, hideReasoning: false, startsInReasoning: opens) : null;
            var results = generator.Generate(ids, options, display is null ? null : (_, piece) => display.Write(piece));
            var timings = generator.LastTimings!;
            if (p.GetValue(json))
            {
                var items = results.Select((r, i) =>
                {
                    var (reasoning, answer) = ReasoningSplitter.Split(r.Text, ReasoningSplitter.PromptOpensReasoning(m.Tokenizer.Decode(ids[i], skipSpecialTokens: false)));
                    return new { r.PromptIds, r.OutputIds, r.Text, Reasoning = reasoning, Answer = answer, r.FinishReason };
                }).ToList();
                var t = new
                {
                    prefill_seconds = timings.PrefillSeconds, decode_seconds = timings.DecodeSeconds, decode_tokens_per_second = timings.DecodeTokensPerSecond,
                    capture_seconds = timings.CaptureSeconds, decode_path = timings.DecodePath,
                };
                stdout.WriteLine(items.Count == 1
                    ? JsonSerializer.Serialize(new { items[0].PromptIds, items[0].OutputIds, items[0].Text, items[0].Reasoning, items[0].Answer, items[0].FinishReason, Timings = t }, JsonOptions.Indented)
                    : JsonSerializer.Serialize(new { Results = items, Timings = t }, JsonOptions.Indented));
                return;
            }
            if (display is not null) display.Finish();
            else
                for (int i = 0; i < results.Count; i++)
                {
                    var (reasoning, answer) = ReasoningSplitter.Split(results[i].Text, ReasoningSplitter.PromptOpensReasoning(m.Tokenizer.Decode(ids[i], skipSpecialTokens: false)));
                    stdout.WriteLine(reasoning is null ? $"[{i}] {answer}" : $"[{i}] [thinking]\n{reasoning}\n[answer]\n{answer}");
                }
            Console.Error.WriteLine($"{timings.GeneratedTokens} tokens, {timings.DecodeTokensPerSecond:0.0} tokens/s (prefill {timings.PrefillSeconds * 1000:0} ms, decode: {timings.DecodePath})");
        });
        return cmd;
    }

    internal static List<ChatMessage> Conversation(string? system, string user)
    {
        var messages = new List<ChatMessage>();
        if (!string.IsNullOrEmpty(system)) messages.Add(new ChatMessage("system", system));
        messages.Add(new ChatMessage("user", user));
        return messages;
    }
}
