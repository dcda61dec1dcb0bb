using System.Text;

namespace SharpTune.Tokenization;

/// <summary>GPT-2's reversible byte-to-character map: printable Latin-1 bytes map to themselves, the other 68
/// bytes to U+0100 and up, so every byte string becomes a string of visible characters.</summary>
internal static class ByteLevel
{
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Inverse map, -1 for characters that stand for no byte.</summary>
    private static readonly short[] CharToByteTable = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= '!' and <= '~') or (>= 0xA1 and <= 0xAC) or (>= 0xAE and <= 0xFF);
            map[b] = printable ? (char)b : (char)(256 + next++);
        }
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[512];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++)
        {
            table[ByteToChar[b]] = (short)b;
        }
        return table;
    }

    /// <summary>The byte a character stands for, or -1.</summary>
    public static int CharToByte(char c) => c < 512 ? CharToByteTable[c] : -1;

    /// <summary>Appends the bytes a token stands for: its byte-level characters mapped back, or, when some character
    /// stands for no byte (e.g. an added token like "&lt;｜User｜&gt;"), the token's own UTF-8 (as HF's decoder does).</summary>
    public static void AppendTokenBytes(string token, List<byte> output)
    {
        foreach (char c in token)
        {
            if (CharToByte(c) < 0)
            {
                output.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }
        }
        foreach (char c in token)
        {
            output.Add((byte)CharToByte(c));
        }
    }
}
