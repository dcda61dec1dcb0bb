using SharpTune.Data;
using SharpTune.Tokenization;
using Xunit;

namespace SharpTune.Tests.Data;

public class PromptFormatTests
{
    private static readonly Example Medical = new("m") { Question = "What is 2 mg/kg for 10 kg?", Reasoning = "10 kg × 2 mg/kg = 20 mg.", Answer = "20 mg." };

    [Fact]
    public void R1Reasoning_HasTheR1MedicalLayout()
    {
        var formatted = PromptFormat.R1Reasoning.Format(Medical);
        Assert.Equal(2, formatted.Segments.Count);
        Assert.Equal(
            PromptFormat.DefaultPreamble + "\n\n### Instruction:\n" + PromptFormat.DefaultInstruction +
            "\n\n### Question:\nWhat is 2 mg/kg for 10 kg?\n\n### Response:\n",
            formatted.Segments[0].Text);
        Assert.False(formatted.Segments[0].Trained);
        Assert.Equal("<think>\n10 kg × 2 mg/kg = 20 mg.\n</think>\n20 mg.", formatted.Segments[1].Text);
        Assert.True(formatted.Segments[1].Trained);
        Assert.Equal(formatted.Segments[0].Text, PromptFormat.R1Reasoning.Prompt(Medical.Question));
    }

    [Fact]
    public void R1Reasoning_TextsAreSettings()
    {
        var custom = PromptFormat.R1Reasoning with { Preamble = "P.", Instruction = "I." };
        Assert.Equal("P.\n\n### Instruction:\nI.\n\n### Question:\nq\n\n### Response:\n",
            custom.Format(new Example("x") { Question = "q", Answer = "a" }).Segments[0].Text);
        Assert.Equal("<think>\n\n</think>\na", custom.Format(new Example("x") { Question = "q", Answer = "a" }).Segments[1].Text);
    }

    [Fact]
    public void Alpaca_WithAndWithoutInput()
    {
        var withInput = PromptFormat.Alpaca.Format(new Example("a") { Question = "Add", Context = "2 and 3", Answer = "5" });
        Assert.Equal(PromptFormat.DefaultAlpacaPreamble + "\n\n### Instruction:\nAdd\n\n### Input:\n2 and 3\n\n### Response:\n", withInput.Segments[0].Text);
        Assert.Equal("5", withInput.Segments[1].Text);
        var without = PromptFormat.Alpaca.Format(new Example("a") { Question = "Hi", Answer = "Hello" });
        Assert.Equal(PromptFormat.DefaultAlpacaPreamble + "\n\n### Instruction:\nHi\n\n### Response:\n", without.Segments[0].Text);
    }

    /// <summary>A ChatML-like template: each message as &lt;|role|&gt;content&lt;eos&gt;.</summary>
    private static string ChatMl(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt) =>
        string.Concat(messages.Select(m => $"<|{m.Role}|>{m.Content}<eos>\n")) + (addGenerationPrompt ? "<|assistant|>" : "");

    [Fact]
    public void ChatTemplate_TrainsEachAssistantTurn()
    {
        var format = PromptFormat.Get("chat-template", ChatMl);
        var example = new Example("c") { Messages = [new("user", "a"), new("assistant", "b"), new("user", "c"), new("assistant", "d")] };
        var segments = format.Format(example).Segments;
        Assert.Equal(
            [new TextSegment("<|user|>a<eos>\n<|assistant|>", false), new TextSegment("b<eos>\n", true),
             new TextSegment("<|user|>c<eos>\n<|assistant|>", false), new TextSegment("d<eos>\n", true)],
            segments);
        Assert.Equal(ChatMl(example.Messages, false), format.Format(example).Text);

        var fromQuestion = format.Format(Medical).Segments;
        Assert.Equal("<think>\n10 kg × 2 mg/kg = 20 mg.\n</think>\n20 mg.<eos>\n", fromQuestion[1].Text);
        Assert.Equal("<|user|>What is 2 mg/kg for 10 kg?<eos>\n<|assistant|>", format.Prompt(Medical.Question));
    }

    [Fact]
    public void ChatTemplate_ThatRewritesHistory_IsABadRow()
    {
        // Like templates that drop earlier turns' reasoning: the rendering does not grow turn by turn.
        static string Rewriting(IReadOnlyList<ChatMessage> messages, bool gen) =>
            string.Concat(messages.Select((m, i) => $"<|{m.Role}|>{(i < messages.Count - 1 && m.Role == "assistant" ? "x" : m.Content)}\n")) + (gen ? "<|assistant|>" : "");
        var format = PromptFormat.ForChatTemplate(Rewriting);
        var example = new Example("row 3") { Messages = [new("user", "a"), new("assistant", "long"), new("user", "c"), new("assistant", "d")] };
        var error = Assert.Throws<BadRowException>(() => format.Format(example));
        Assert.StartsWith("row 3: the chat template does not render this conversation as growing text at message 3", error.Message);
    }

    [Fact]
    public void UnknownFormat_AndMissingRenderer_AreErrors()
    {
        Assert.Contains("known formats: r1-reasoning, alpaca, chat-template", Assert.Throws<SharpTuneException>(() => PromptFormat.Get("llama")).Message);
        Assert.Contains("needs the model's chat template", Assert.Throws<SharpTuneException>(() => PromptFormat.Get("chat-template")).Message);
    }
}
