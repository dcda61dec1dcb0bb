using SharpTune.Data;
using Xunit;

namespace SharpTune.Tests.Data;

public class ExampleFormatTests
{
    private static List<Example> Examples(TempDir dir, string name, string text, DatasetSource? template = null, BadRowLog? log = null)
    {
        string path = dir.File(name, text);
        var source = (template ?? new DatasetSource(path)) with { Path = path };
        return DatasetReader.ReadExamples(source, log).ToList();
    }

    [Fact]
    public void MedicalO1_IsDetected()
    {
        using var dir = new TempDir();
        var e = Examples(dir, "m.json", """[{"Question": "Q?", "Complex_CoT": "think", "Response": "A."}]""").Single();
        Assert.Equal(("Q?", "think", "A.", ""), (e.Question, e.Reasoning, e.Answer, e.Context));
        Assert.Equal("m.json:1 (row 1)", e.Location);
        Assert.False(e.IsChat);
    }

    [Fact]
    public void Alpaca_IsDetected_WithOptionalInput()
    {
        using var dir = new TempDir();
        var examples = Examples(dir, "a.jsonl", """
            {"instruction": "Add", "input": "2 and 3", "output": "5"}
            {"instruction": "Say hi", "input": "", "output": "hi"}
            {"instruction": "No input column", "output": "ok"}
            """);
        Assert.Equal(("Add", "2 and 3", "5"), (examples[0].Question, examples[0].Context, examples[0].Answer));
        Assert.Equal("", examples[1].Context);
        Assert.Equal("ok", examples[2].Answer);
    }

    [Fact]
    public void Chat_IsDetected_IncludingShareGptKeysAndContentParts()
    {
        using var dir = new TempDir();
        var examples = Examples(dir, "c.jsonl", """
            {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]}
            {"messages": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": "c"}]}
            """);
        Assert.Equal([new("system", "S"), new("user", "U"), new("assistant", "A")], examples[0].Messages!);
        Assert.Equal([new("user", "hi"), new("assistant", "hello")], examples[1].Messages!);
        Assert.Equal("ab", examples[2].Messages![0].Content);

        var sharegpt = Examples(dir, "s.jsonl", """{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}""").Single();
        Assert.Equal("a", sharegpt.Messages![1].Content);
    }

    [Fact]
    public void ColumnMapping_OverridesColumns()
    {
        using var dir = new TempDir();
        var source = new DatasetSource("") { Columns = ExampleFormat.ParseColumnMap("question=problem, reasoning=steps, answer=solution") };
        var e = Examples(dir, "x.jsonl", """{"problem": "P", "steps": "S", "solution": "X"}""", source).Single();
        Assert.Equal(("P", "S", "X"), (e.Question, e.Reasoning, e.Answer));

        var named = new DatasetSource("") { Format = "alpaca", Columns = new Dictionary<string, string> { ["answer"] = "Output" } };
        var a = Examples(dir, "y.jsonl", """{"instruction": "I", "Output": "O"}""", named).Single();
        Assert.Equal("O", a.Answer);
    }

    [Fact]
    public void UnknownColumns_ErrorListsColumnsAndFormats()
    {
        using var dir = new TempDir();
        var error = Assert.Throws<SharpTuneException>(() => Examples(dir, "u.jsonl", """{"foo": 1, "bar": 2}"""));
        Assert.Equal(
            "u.jsonl:1: cannot tell the dataset's format from its columns (foo, bar); name a format (medical-o1, alpaca, chat, " +
            "conversations, prompt-completion, question-answer) or map columns, e.g. question=COLUMN,answer=COLUMN", error.Message);
        Assert.Throws<SharpTuneException>(() => ExampleFormat.ParseColumnMap("question"));
        Assert.Contains("unknown field 'questoin'", Assert.Throws<SharpTuneException>(
            () => ExampleFormat.MedicalO1.WithColumns(new Dictionary<string, string> { ["questoin"] = "Q" })).Message);
    }

    [Fact]
    public void MissingColumn_NamesFileRowColumnAndColumnsPresent()
    {
        using var dir = new TempDir();
        string text = """
            {"Question": "q1", "Complex_CoT": "c", "Response": "r"}
            {"Question": "q2", "Complex_CoT": "c"}
            """;
        var error = Assert.Throws<SharpTuneException>(() => Examples(dir, "m.jsonl", text));
        Assert.Equal("m.jsonl:2: missing column 'Response' (format medical-o1; columns: Question, Complex_CoT)", error.Message);
    }

    [Fact]
    public void EmptyOrNullOrWrongTypeValues_AreBadRows_AndCanBeSkipped()
    {
        using var dir = new TempDir();
        string text = """
            {"Question": "ok", "Complex_CoT": "", "Response": "fine"}
            {"Question": "  ", "Complex_CoT": "c", "Response": "r"}
            {"Question": "q", "Complex_CoT": "c", "Response": null}
            {"Question": ["a list"], "Complex_CoT": "c", "Response": "r"}
            {"Question": 42, "Complex_CoT": null, "Response": "numbers are text"}
            """;
        var log = new BadRowLog();
        var examples = Examples(dir, "e.jsonl", text, new DatasetSource("") { OnBadRow = BadRowPolicy.Skip }, log);
        Assert.Equal(["ok", "42"], examples.Select(e => e.Question));
        Assert.Equal("", examples[1].Reasoning);
        Assert.Equal(
            ["e.jsonl:2: column 'Question' is empty", "e.jsonl:3: column 'Response' is empty",
             "e.jsonl:4: column 'Question' holds a list, expected text"],
            log.Samples);
    }

    [Fact]
    public void MalformedConversations_AreBadRows()
    {
        using var dir = new TempDir();
        string text = """
            {"messages": [{"role": "user", "content": "no reply"}]}
            {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}
            {"messages": "not a list"}
            {"messages": [{"content": "no role"}]}
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
            """;
        var log = new BadRowLog();
        var examples = Examples(dir, "c.jsonl", text, new DatasetSource("") { OnBadRow = BadRowPolicy.Skip }, log);
        Assert.Single(examples);
        Assert.Equal(
            ["c.jsonl:1: column 'messages' has no non-empty assistant message",
             "c.jsonl:2: messages[0] has role 'robot', expected system, user or assistant",
             "c.jsonl:3: column 'messages' holds text, expected a list of messages",
             "c.jsonl:4: messages[0] has no role (keys: content)"],
            log.Samples);
    }

    [Fact]
    public void AsQuestion_SplitsThinkBlock_AndAsMessages_AddsIt()
    {
        var chat = new Example("x")
        {
            Messages = [new("system", "Be exact."), new("user", "2+2?"), new("assistant", "<think>\nadd\n</think>\n4")],
        };
        var q = chat.AsQuestion();
        Assert.Equal(("Be exact.", "2+2?", "add", "4"), (q.System, q.Question, q.Reasoning, q.Answer));

        var question = new Example("y") { Question = "Q", Context = "C", Reasoning = "R", Answer = "A" };
        Assert.Equal([new("user", "Q\n\nC"), new("assistant", "<think>\nR\n</think>\nA")], question.AsMessages());

        var multiTurn = new Example("z") { Messages = [new("user", "a"), new("assistant", "b"), new("user", "c"), new("assistant", "d")] };
        Assert.Contains("use the chat-template format", Assert.Throws<BadRowException>(() => multiTurn.AsQuestion()).Message);
    }
}
