using System.Globalization;
using System.Runtime.CompilerServices;

namespace SharpTune.Tokenization;

/// <summary>Unicode character classes as Oniguruma and Rust see them, by code point (never by UTF-16 unit, so
/// astral letters and digits are classified like BMP ones).</summary>
internal static class UnicodeClass
{
    [Flags]
    public enum Flags : byte
    {
        None = 0,
        Letter = 1,
        Number = 2,
        Punctuation = 4,
        Symbol = 8,
        Mark = 16,
        Space = 32,
        DecimalDigit = 64,
        ConnectorPunctuation = 128,
    }

    // One byte of flags per BMP code point; astral code points are classified on demand.
    private static readonly Flags[] BmpFlags = BuildBmpTable();

    private static Flags[] BuildBmpTable()
    {
        var table = new Flags[0x10000];
        for (int cp = 0; cp < 0x10000; cp++)
        {
            table[cp] = Compute(cp);
        }
        return table;
    }

    private static Flags Compute(int cp)
    {
        if (cp is >= 0xD800 and <= 0xDFFF)
        {
            return Flags.None;
        }
        var flags = CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Flags.Letter,
            UnicodeCategory.DecimalDigitNumber => Flags.Number | Flags.DecimalDigit,
            UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Flags.Number,
            UnicodeCategory.ConnectorPunctuation => Flags.Punctuation | Flags.ConnectorPunctuation,
            UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
                or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation
                or UnicodeCategory.OtherPunctuation => Flags.Punctuation,
            UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                or UnicodeCategory.OtherSymbol => Flags.Symbol,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
                or UnicodeCategory.EnclosingMark => Flags.Mark,
            _ => Flags.None,
        };
        if (IsWhiteSpaceProperty(cp))
        {
            flags |= Flags.Space;
        }
        return flags;
    }

    /// <summary>The Unicode White_Space property (what \s means in Oniguruma and Rust).</summary>
    private static bool IsWhiteSpaceProperty(int cp) => cp is (>= 0x09 and <= 0x0D) or 0x20 or 0x85 or 0xA0 or 0x1680
        or (>= 0x2000 and <= 0x200A) or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Flags Of(int cp) => cp < 0x10000 ? BmpFlags[cp] : Compute(cp);

    public static bool IsLetter(int cp) => (Of(cp) & Flags.Letter) != 0;
    public static bool IsNumber(int cp) => (Of(cp) & Flags.Number) != 0;
    public static bool IsSpace(int cp) => (Of(cp) & Flags.Space) != 0;

    /// <summary>Rust's \w: Alphabetic, marks, decimal digits, connector punctuation, join controls. Alphabetic is
    /// approximated by letters plus letter numbers (Nl).</summary>
    public static bool IsWordChar(int cp)
    {
        var flags = Of(cp);
        if ((flags & (Flags.Letter | Flags.Mark | Flags.DecimalDigit | Flags.ConnectorPunctuation)) != 0)
        {
            return true;
        }
        return cp is 0x200C or 0x200D || CharUnicodeInfo.GetUnicodeCategory(cp) == UnicodeCategory.LetterNumber;
    }

    /// <summary>Reads the code point at <paramref name="index"/>; a lone surrogate reads as itself (one unit).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CodePointAt(ReadOnlySpan<char> text, int index, out int length)
    {
        char c = text[index];
        if (char.IsHighSurrogate(c) && index + 1 < text.Length && char.IsLowSurrogate(text[index + 1]))
        {
            length = 2;
            return char.ConvertToUtf32(c, text[index + 1]);
        }
        length = 1;
        return c;
    }

    /// <summary>Simple case folding for case-insensitive regex literals (including long s and the Kelvin sign, which
    /// Oniguruma folds to s and k).</summary>
    public static int Fold(int cp)
    {
        if (cp == 0x17F)
        {
            return 's';
        }
        if (cp == 0x212A)
        {
            return 'k';
        }
        if (cp < 0x10000)
        {
            return char.ToLowerInvariant((char)cp);
        }
        string lowered = char.ConvertFromUtf32(cp).ToLowerInvariant();
        return char.ConvertToUtf32(lowered, 0);
    }
}
