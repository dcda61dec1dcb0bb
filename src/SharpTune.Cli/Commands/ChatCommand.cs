using System.CommandLine;
using SharpTune.Generation;
using SharpTune.Models;
using SharpTune.Tokenization;

namespace SharpTune.Cli.Commands;

/// <summary>Interactive chat with streaming; the model's &lt;think&gt; reasoning is shown apart from its answer
/// (dimmed on a terminal, under a "thinking" header otherwise).</summary>
static class ChatCommand
{
    public static Command Create(TextWriter stdout)
    {
        var modelFlags = new ModelFlags();
        var system = new Option<string?>("--system") { Description = "System message" };
        var hideReasoning = new Option<bool>("--hide-reasoning") { Description = "Do not print the <think> reasoning" };
        var sampling = new SamplingFlags();
        var cmd = new Command("chat", "Chat with a model (/reset clears the conversation, /exit or Ctrl-D quits)") { system, hideReasoning };
        modelFlags.AddTo(cmd);
        sampling.AddTo(cmd);
        cmd.SetAction(p =>
        {
            using var m = modelFlags.Load(p);
            var options = sampling.Resolve(p, m);
            var format = modelFlags.TrainingPromptFormat(p);
            var generator = new TextGenerator(m.CausalLM, m.Tokenizer);
            bool terminal = !Console.IsOutputRedirected && ReferenceEquals(stdout, Console.Out);
            var history = new List<ChatMessage>();
            if (p.GetValue(system) is { Length: > 0 } s) history.Add(new ChatMessage("system", s));
            int systemCount = history.Count;
            stdout.WriteLine($"Chatting with {m.Directory} ({m.Config.Architecture}). /reset clears, /exit or Ctrl-D quits, Ctrl-C stops a reply.");
            using var interrupts = new ChatInterrupts(stdout);
            if (ReferenceEquals(stdout, Console.Out)) interrupts.Listen();
            while (true)
            {
                stdout.Write(terminal ? "\u001b[1m> \u001b[0m" : "> ");
                stdout.Flush();
                string? line = Console.In.ReadLine();
                if (line is null) { stdout.WriteLine(); break; }   // Ctrl-D: the shell's prompt goes on a line of its own
                interrupts.Typed();
                if (line.Trim() == "/exit") break;
                if (line.Trim() == "/reset") { history.RemoveRange(systemCount, history.Count - systemCount); continue; }
                if (line.Trim().Length == 0) continue;

                history.Add(new ChatMessage("user", line));
                // With a training prompt format each turn stands alone (those formats have no history).
                string prompt = format is not null ? format.Prompt(line) : m.RenderChat(history);
                var ids = m.Tokenizer.Encode(prompt, addSpecialTokens: format is not null);
                var display = new ReasoningDisplay(stdout, terminal, p.GetValue(hideReasoning), ReasoningSplitter.PromptOpensReasoning(prompt));
                // Special tokens stay in the text so that the <think> tags reach the display.
                var result = generator.Generate([ids], options with { SkipSpecialTokens = false }, (_, piece) => display.Write(piece), interrupts.BeginReply())[0];
                bool stopped = interrupts.EndReply();
                display.Finish();
                if (stopped) stdout.WriteLine("[reply stopped]");
                history.Add(new ChatMessage("assistant", result.Text));
            }
        });
        return cmd;
    }
}
