using SharpTune.Tokenization;

namespace SharpTune.Generation;

/// <summary>One row's text as it forms: decoded incrementally, cut at the earliest stop string, and streamed
/// without ever emitting the start of a stop string that may still complete.</summary>
internal sealed class TextStream(StreamingDecoder decoder, IReadOnlyList<string> stops, Action<string> emit)
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
