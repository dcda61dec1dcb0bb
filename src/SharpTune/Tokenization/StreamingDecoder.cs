using System.Text;

namespace SharpTune.Tokenization;

/// <summary>
/// Decodes generated ids one at a time. <see cref="Push"/> returns only text that is complete: the bytes of a
/// character split across tokens are held back until the rest arrives. The concatenated outputs (plus
/// <see cref="Flush"/>) equal <see cref="Tokenizer.Decode"/> of all ids.
/// </summary>
public sealed class StreamingDecoder(Tokenizer tokenizer, bool skipSpecialTokens)
{
    private readonly List<byte> _pending = [];

    /// <summary>The text completed by this id (often empty while a multi-byte character is incomplete).</summary>
    public string Push(int id)
    {
        tokenizer.AppendBytes(id, skipSpecialTokens, _pending);
        int complete = _pending.Count - IncompleteTail();
        if (complete == 0)
        {
            return "";
        }
        var bytes = _pending.GetRange(0, complete).ToArray();
        _pending.RemoveRange(0, complete);
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Whatever is still held back, decoded as is (invalid bytes become U+FFFD).</summary>
    public string Flush()
    {
        string rest = Encoding.UTF8.GetString(_pending.ToArray());
        _pending.Clear();
        return rest;
    }

    /// <summary>Number of bytes at the end that start a valid UTF-8 sequence which is not finished yet.</summary>
    private int IncompleteTail()
    {
        int count = _pending.Count;
        for (int back = 1; back <= Math.Min(3, count); back++)
        {
            byte b = _pending[count - back];
            if ((b & 0xC0) == 0x80)
            {
                continue; // continuation byte: keep looking for the lead byte
            }
            int needed = b >= 0xF0 && b <= 0xF4 ? 4 : b >= 0xE0 && b < 0xF0 ? 3 : b >= 0xC2 && b < 0xE0 ? 2 : 1;
            if (needed <= back || !ValidSoFar(count - back, needed))
            {
                return 0;
            }
            return back;
        }
        return 0;
    }

    /// <summary>Whether the started sequence could still become a valid character (rules out overlong forms and
    /// surrogates, so that bytes which can never complete are emitted at once, as U+FFFD).</summary>
    private bool ValidSoFar(int start, int needed)
    {
        byte lead = _pending[start];
        if (start + 1 < _pending.Count)
        {
            byte second = _pending[start + 1];
            bool ok = lead switch
            {
                0xE0 => second >= 0xA0,
                0xED => second < 0xA0,
                0xF0 => second >= 0x90,
                0xF4 => second < 0x90,
                _ => true,
            };
            if (!ok)
            {
                return false;
            }
        }
        return needed > 1;
    }
}
