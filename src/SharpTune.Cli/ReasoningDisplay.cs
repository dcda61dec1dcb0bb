using SharpTune.Generation;

namespace SharpTune.Cli;

/// <summary>Streams a reasoning model's text with its &lt;think&gt; reasoning shown apart from the answer: dimmed on a
/// terminal, under [thinking] / [answer] markers otherwise.</summary>
sealed class ReasoningDisplay(TextWriter output, bool terminal, bool hideReasoning, bool startsInReasoning)
{
    readonly ReasoningSplitter _splitter = new(startsInReasoning);
    bool? _lastWasReasoning;

    public void Write(string piece)
    {
        foreach (var segment in _splitter.Push(piece)) Show(segment);
        output.Flush();
    }

    public void Finish()
    {
        if (_splitter.Flush() is { } rest) Show(rest);
        output.WriteLine(terminal ? "\u001b[0m" : "");
    }

    void Show(ReasoningSplitter.Segment segment)
    {
        if (segment.IsReasoning && hideReasoning) return;
        if (_lastWasReasoning != segment.IsReasoning)
        {
            if (terminal) output.Write(segment.IsReasoning ? "\u001b[2m" : "\u001b[0m");
            else output.Write(segment.IsReasoning ? "[thinking]\n" : (_lastWasReasoning == true ? "\n[answer]\n" : ""));
            _lastWasReasoning = segment.IsReasoning;
        }
        output.Write(segment.Text);
    }
}
