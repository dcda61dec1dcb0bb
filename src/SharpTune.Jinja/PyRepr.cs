using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

/// <summary>Python's text forms of floats and strings (<c>repr(1e16)</c> is "1e+16", <c>repr("it's")</c> is "\"it's\"").</summary>
internal static class PyRepr
{
    /// <summary><c>repr(float)</c>: the shortest round-trip digits, positional for 1e-4 &lt;= |x| &lt; 1e16, otherwise scientific.</summary>
    public static string Float(double value)
    {
        if (double.IsNaN(value))
        {
            return "nan";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "inf" : "-inf";
        }

        if (value == 0)
        {
            return double.IsNegative(value) ? "-0.0" : "0.0";
        }

        var (negative, digits, pointPosition) = ShortestDigits(value);
        var sb = new StringBuilder();
        if (negative)
        {
            sb.Append('-');
        }

        if (pointPosition > -4 && pointPosition <= 16)
        {
            if (pointPosition <= 0)
            {
                sb.Append("0.").Append('0', -pointPosition).Append(digits);
            }
            else if (pointPosition >= digits.Length)
            {
                sb.Append(digits).Append('0', pointPosition - digits.Length).Append(".0");
            }
            else
            {
                sb.Append(digits, 0, pointPosition).Append('.').Append(digits, pointPosition, digits.Length - pointPosition);
            }
        }
        else
        {
            sb.Append(digits[0]);
            if (digits.Length > 1)
            {
                sb.Append('.').Append(digits, 1, digits.Length - 1);
            }

            var exponent = pointPosition - 1;
            sb.Append('e').Append(exponent < 0 ? '-' : '+').Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        }

        return sb.ToString();
    }

    /// <summary>Splits |value| into its shortest round-trip digits and the decimal point position (value = 0.DIGITS x 10^point).</summary>
    private static (bool Negative, string Digits, int PointPosition) ShortestDigits(double value)
    {
        var text = value.ToString("R", CultureInfo.InvariantCulture);
        var negative = text.StartsWith('-');
        if (negative)
        {
            text = text[1..];
        }

        var exponent = 0;
        var e = text.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(text[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            text = text[..e];
        }

        var dot = text.IndexOf('.');
        var integerDigits = dot >= 0 ? dot : text.Length;
        var digits = text.Replace(".", "");
        var pointPosition = integerDigits + exponent;
        var leadingZeros = digits.Length - digits.TrimStart('0').Length;
        digits = digits.Trim('0');
        return (negative, digits, pointPosition - leadingZeros);
    }

    /// <summary><c>repr(str)</c>: single quotes unless the text has a single quote and no double quote; non-printables escaped.</summary>
    public static string String(string value)
    {
        var quote = value.Contains('\'') && !value.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(value.Length + 2).Append(quote);
        foreach (var rune in value.EnumerateRunes())
        {
            var c = rune.Value;
            if (c == quote || c == '\\')
            {
                sb.Append('\\').Append((char)c);
            }
            else if (c == '\n')
            {
                sb.Append("\\n");
            }
            else if (c == '\r')
            {
                sb.Append("\\r");
            }
            else if (c == '\t')
            {
                sb.Append("\\t");
            }
            else if (IsPrintable(rune))
            {
                sb.Append(rune.ToString());
            }
            else if (c < 0x100)
            {
                sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
            }
            else if (c < 0x10000)
            {
                sb.Append("\\u").Append(c.ToString("x4", CultureInfo.InvariantCulture));
            }
            else
            {
                sb.Append("\\U").Append(c.ToString("x8", CultureInfo.InvariantCulture));
            }
        }

        return sb.Append(quote).ToString();
    }

    /// <summary>Python's <c>str.isprintable</c> for one character: not a control, format, separator (except space) or unassigned.</summary>
    private static bool IsPrintable(Rune rune)
    {
        if (rune.Value == ' ')
        {
            return true;
        }

        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
                or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                or UnicodeCategory.SpaceSeparator => false,
            _ => true,
        };
    }
}
