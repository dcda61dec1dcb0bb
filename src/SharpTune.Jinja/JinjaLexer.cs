using System.Globalization;
using System.Text;

namespace SharpTune.Jinja;

internal enum TokenKind
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

/// <summary>One lexer token. <see cref="Literal"/> holds the decoded value of string and number tokens.</summary>
internal readonly record struct JinjaToken(TokenKind Kind, string Value, object? Literal, int Line, int Column)
{
    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;

    public bool IsOperator(string op) => Kind == TokenKind.Operator && Value == op;

    public string Describe() => Kind switch
    {
        TokenKind.Name or TokenKind.Operator => Value,
        TokenKind.Data => "template data / text",
        TokenKind.VariableBegin => "begin of print statement",
        TokenKind.VariableEnd => "end of print statement",
        TokenKind.BlockBegin => "begin of statement block",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.String => "string",
        TokenKind.Integer => "integer",
        TokenKind.Float => "float",
        _ => "end of template",
    };
}

/// <summary>
/// Splits a template into tokens the way jinja2's lexer does with Hugging Face's settings: trim_blocks and
/// lstrip_blocks on, keep_trailing_newline off, newlines normalised to "\n", '-' and '+' whitespace control.
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] Operators =
    [
        "//", "**", "==", "!=", ">=", "<=",
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ];

    private readonly string _source;
    private readonly List<int> _lineStarts = [0];
    private readonly List<JinjaToken> _tokens = [];
    private int _pos;
    private bool _lineStarting = true;

    private JinjaLexer(string source)
    {
        _source = NormalizeNewlines(source);
        for (var i = 0; i < _source.Length; i++)
        {
            if (_source[i] == '\n')
            {
                _lineStarts.Add(i + 1);
            }
        }
    }

    public static List<JinjaToken> Tokenize(string source)
    {
        var lexer = new JinjaLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    /// <summary>jinja2 turns every \r\n, \r and \n into \n and drops one trailing newline.</summary>
    private static string NormalizeNewlines(string text)
    {
        var normalized = text.Replace("\r\n", "\n").Replace('\r', '\n');
        return normalized.EndsWith('\n') ? normalized[..^1] : normalized;
    }

    private void Run()
    {
        while (_pos < _source.Length)
        {
            var tag = FindNextTag(_pos);
            if (tag is null)
            {
                Emit(TokenKind.Data, _source[_pos..], null, _pos);
                _pos = _source.Length;
                break;
            }

            var (start, kind, sign, afterSign) = tag.Value;
            var text = _source[_pos..start];
            if (sign == '-')
            {
                text = PyString.RStrip(text, null);
            }
            else if (sign != '+' && kind != TagKind.Variable)
            {
                // lstrip_blocks: drop the spaces between the start of the line and a block or comment tag.
                var lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || _lineStarting) && lineStart < text.Length && IsAllWhitespace(text, lineStart))
                {
                    text = text[..lineStart];
                }
            }

            if (text.Length > 0)
            {
                Emit(TokenKind.Data, text, null, _pos);
            }

            switch (kind)
            {
                case TagKind.Raw:
                    LexRaw(start, afterSign);
                    break;
                case TagKind.Comment:
                    _pos = afterSign;
                    LexComment(start);
                    break;
                case TagKind.Variable:
                    Emit(TokenKind.VariableBegin, "{{", null, start);
                    _pos = afterSign;
                    _lineStarting = false;
                    LexInsideTag(isBlock: false, start);
                    break;
                default:
                    Emit(TokenKind.BlockBegin, "{%", null, start);
                    _pos = afterSign;
                    _lineStarting = false;
                    LexInsideTag(isBlock: true, start);
                    break;
            }
        }

        Emit(TokenKind.Eof, "", null, _source.Length);
    }

    private enum TagKind
    {
        Variable,
        Block,
        Comment,
        Raw,
    }

    /// <summary>Finds the next "{{", "{%" or "{#" (a "{% raw %}" tag is recognised as a whole).</summary>
    private (int Start, TagKind Kind, char Sign, int AfterSign)? FindNextTag(int from)
    {
        for (var i = _source.IndexOf('{', from); i >= 0 && i + 1 < _source.Length; i = _source.IndexOf('{', i + 1))
        {
            var next = _source[i + 1];
            TagKind kind;
            if (next == '{')
            {
                kind = TagKind.Variable;
            }
            else if (next == '%')
            {
                kind = TagKind.Block;
            }
            else if (next == '#')
            {
                kind = TagKind.Comment;
            }
            else
            {
                continue;
            }

            var afterTag = i + 2;
            var sign = afterTag < _source.Length && _source[afterTag] is '-' or '+' ? _source[afterTag] : '\0';
            var afterSign = sign == '\0' ? afterTag : afterTag + 1;
            if (kind == TagKind.Block && TryMatchRawBegin(afterSign, out var rawEnd))
            {
                return (i, TagKind.Raw, sign, rawEnd);
            }

            return (i, kind, sign, afterSign);
        }

        return null;
    }

    /// <summary>Matches the rest of "{% raw %}" ("\s*raw\s*" then "-%}\s*" or "%}") and returns the end position.</summary>
    private bool TryMatchRawBegin(int at, out int end)
    {
        end = at;
        var i = SkipWhitespace(at);
        if (string.CompareOrdinal(_source, i, "raw", 0, 3) != 0)
        {
            return false;
        }

        i = SkipWhitespace(i + 3);
        if (string.CompareOrdinal(_source, i, "-%}", 0, 3) == 0)
        {
            end = SkipWhitespace(i + 3);
            return true;
        }

        if (string.CompareOrdinal(_source, i, "%}", 0, 2) == 0)
        {
            end = i + 2;
            return true;
        }

        return false;
    }

    private void LexRaw(int tagStart, int bodyStart)
    {
        _lineStarting = _source[bodyStart - 1] == '\n';
        for (var i = _source.IndexOf("{%", bodyStart, StringComparison.Ordinal); i >= 0;
             i = _source.IndexOf("{%", i + 2, StringComparison.Ordinal))
        {
            var afterTag = i + 2;
            var sign = afterTag < _source.Length && _source[afterTag] is '-' or '+' ? _source[afterTag] : '\0';
            var j = SkipWhitespace(sign == '\0' ? afterTag : afterTag + 1);
            if (string.CompareOrdinal(_source, j, "endraw", 0, 6) != 0)
            {
                continue;
            }

            j = SkipWhitespace(j + 6);
            if (!TryMatchBlockEnd(j, out var end))
            {
                continue;
            }

            var text = _source[bodyStart..i];
            if (sign == '-')
            {
                text = PyString.RStrip(text, null);
            }
            else if (sign != '+')
            {
                var lineStart = text.LastIndexOf('\n') + 1;
                if ((lineStart > 0 || _lineStarting) && lineStart < text.Length && IsAllWhitespace(text, lineStart))
                {
                    text = text[..lineStart];
                }
            }

            if (text.Length > 0)
            {
                Emit(TokenKind.Data, text, null, bodyStart);
            }

            _pos = end;
            _lineStarting = _source[end - 1] == '\n';
            return;
        }

        throw SyntaxError("Missing end of raw directive", tagStart);
    }

    private void LexComment(int tagStart)
    {
        var close = _source.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (close < 0)
        {
            throw SyntaxError("Missing end of comment tag", tagStart);
        }

        var before = close - 1 >= _pos ? _source[close - 1] : '\0';
        var end = close + 2;
        if (before == '-')
        {
            end = SkipWhitespace(end);
        }
        else if (before != '+' && end < _source.Length && _source[end] == '\n')
        {
            end++;
        }

        _pos = end;
        _lineStarting = _source[end - 1] == '\n';
    }

    /// <summary>Block end: "+%}", "-%}" followed by any whitespace, or "%}" followed by at most one newline.</summary>
    private bool TryMatchBlockEnd(int at, out int end)
    {
        end = at;
        if (string.CompareOrdinal(_source, at, "+%}", 0, 3) == 0)
        {
            end = at + 3;
            return true;
        }

        if (string.CompareOrdinal(_source, at, "-%}", 0, 3) == 0)
        {
            end = SkipWhitespace(at + 3);
            return true;
        }

        if (string.CompareOrdinal(_source, at, "%}", 0, 2) == 0)
        {
            end = at + 2 < _source.Length && _source[at + 2] == '\n' ? at + 3 : at + 2;
            return true;
        }

        return false;
    }

    private bool TryMatchVariableEnd(int at, out int end)
    {
        end = at;
        if (string.CompareOrdinal(_source, at, "-}}", 0, 3) == 0)
        {
            end = SkipWhitespace(at + 3);
            return true;
        }

        if (string.CompareOrdinal(_source, at, "}}", 0, 2) == 0)
        {
            end = at + 2;
            return true;
        }

        return false;
    }

    private void LexInsideTag(bool isBlock, int tagStart)
    {
        var brackets = new Stack<char>();
        while (true)
        {
            if (_pos >= _source.Length)
            {
                throw SyntaxError($"unexpected end of template, expected '{(isBlock ? "%}" : "}}")}'", tagStart);
            }

            if (brackets.Count == 0)
            {
                var isEnd = isBlock ? TryMatchBlockEnd(_pos, out var end) : TryMatchVariableEnd(_pos, out end);
                if (isEnd)
                {
                    Emit(isBlock ? TokenKind.BlockEnd : TokenKind.VariableEnd, isBlock ? "%}" : "}}", null, _pos);
                    _pos = end;
                    _lineStarting = _source[end - 1] == '\n';
                    return;
                }
            }

            var c = _source[_pos];
            if (PyString.IsSpace(c))
            {
                _pos++;
                continue;
            }

            if (TryLexNumber() || TryLexName() || TryLexString())
            {
                continue;
            }

            var op = Operators.FirstOrDefault(o => string.CompareOrdinal(_source, _pos, o, 0, o.Length) == 0)
                ?? throw SyntaxError($"unexpected char {PyRepr.String(c.ToString())} at {_pos}", _pos);
            if (op is "(" or "[" or "{")
            {
                brackets.Push(op switch { "(" => ')', "[" => ']', _ => '}' });
            }
            else if (op is ")" or "]" or "}")
            {
                if (brackets.Count == 0)
                {
                    throw SyntaxError($"unexpected '{op}'", _pos);
                }

                var expected = brackets.Pop();
                if (expected != op[0])
                {
                    throw SyntaxError($"unexpected '{op}', expected '{expected}'", _pos);
                }
            }

            Emit(TokenKind.Operator, op, null, _pos);
            _pos += op.Length;
        }
    }

    private bool TryLexNumber()
    {
        var start = _pos;
        if (!char.IsAsciiDigit(_source[start]))
        {
            return false;
        }

        // Floats first, like jinja2: digits with '_' separators, then a fraction and/or an exponent.
        if (start == 0 || _source[start - 1] != '.')
        {
            var i = ScanDigits(start);
            var hasFraction = false;
            if (i < _source.Length && _source[i] == '.' && i + 1 < _source.Length && char.IsAsciiDigit(_source[i + 1]))
            {
                i = ScanDigits(i + 1);
                hasFraction = true;
            }

            var exponentEnd = ScanExponent(i);
            if (exponentEnd > i || hasFraction)
            {
                var text = _source[start..exponentEnd].Replace("_", "");
                Emit(TokenKind.Float, _source[start..exponentEnd], double.Parse(text, CultureInfo.InvariantCulture), start);
                _pos = exponentEnd;
                return true;
            }
        }

        var (end, value) = ScanInteger(start);
        Emit(TokenKind.Integer, _source[start..end], value, start);
        _pos = end;
        return true;
    }

    /// <summary>Scans "(\d+_)*\d+" from a digit.</summary>
    private int ScanDigits(int i)
    {
        while (true)
        {
            while (i < _source.Length && char.IsAsciiDigit(_source[i]))
            {
                i++;
            }

            if (i + 1 < _source.Length && _source[i] == '_' && char.IsAsciiDigit(_source[i + 1]))
            {
                i++;
                continue;
            }

            return i;
        }
    }

    private int ScanExponent(int i)
    {
        if (i >= _source.Length || (_source[i] != 'e' && _source[i] != 'E'))
        {
            return i;
        }

        var j = i + 1;
        if (j < _source.Length && _source[j] is '+' or '-')
        {
            j++;
        }

        return j < _source.Length && char.IsAsciiDigit(_source[j]) ? ScanDigits(j) : i;
    }

    private (int End, long Value) ScanInteger(int start)
    {
        if (_source[start] == '0' && start + 1 < _source.Length && char.ToLowerInvariant(_source[start + 1]) is 'b' or 'o' or 'x')
        {
            var radix = char.ToLowerInvariant(_source[start + 1]) switch { 'b' => 2, 'o' => 8, _ => 16 };
            var i = start + 2;
            var digits = new StringBuilder();
            while (i < _source.Length)
            {
                var skip = _source[i] == '_' ? 1 : 0;
                if (i + skip < _source.Length && IsRadixDigit(_source[i + skip], radix))
                {
                    digits.Append(_source[i + skip]);
                    i += skip + 1;
                }
                else
                {
                    break;
                }
            }

            if (digits.Length > 0)
            {
                return (i, ParseRadix(digits.ToString(), radix, start));
            }
        }

        if (_source[start] == '0')
        {
            // "0(_?0)*": a decimal zero.
            var i = start + 1;
            while (i < _source.Length)
            {
                var skip = _source[i] == '_' ? 1 : 0;
                if (i + skip < _source.Length && _source[i + skip] == '0')
                {
                    i += skip + 1;
                }
                else
                {
                    break;
                }
            }

            return (i, 0);
        }

        var end = ScanDigits(start);
        var text = _source[start..end].Replace("_", "");
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
        {
            throw SyntaxError($"integer literal {text} is too large", start);
        }

        return (end, value);
    }

    private static bool IsRadixDigit(char c, int radix) => radix switch
    {
        2 => c is '0' or '1',
        8 => c is >= '0' and <= '7',
        _ => char.IsAsciiHexDigit(c),
    };

    private long ParseRadix(string digits, int radix, int at)
    {
        try
        {
            return Convert.ToInt64(digits, radix);
        }
        catch (OverflowException)
        {
            throw SyntaxError($"integer literal {digits} is too large", at);
        }
    }

    private bool TryLexName()
    {
        var c = _source[_pos];
        if (!(char.IsLetter(c) || c == '_'))
        {
            return false;
        }

        var end = _pos + 1;
        while (end < _source.Length && (char.IsLetterOrDigit(_source[end]) || _source[end] == '_'))
        {
            end++;
        }

        Emit(TokenKind.Name, _source[_pos..end], null, _pos);
        _pos = end;
        return true;
    }

    private bool TryLexString()
    {
        var quote = _source[_pos];
        if (quote != '\'' && quote != '"')
        {
            return false;
        }

        var i = _pos + 1;
        while (i < _source.Length && _source[i] != quote)
        {
            i += _source[i] == '\\' ? 2 : 1;
        }

        if (i >= _source.Length)
        {
            return false;
        }

        var raw = _source[(_pos + 1)..i];
        Emit(TokenKind.String, _source[_pos..(i + 1)], Unescape(raw, _pos), _pos);
        _pos = i + 1;
        return true;
    }

    /// <summary>Decodes backslash escapes like Python's "unicode-escape" codec, which jinja2 applies to string literals.</summary>
    private string Unescape(string raw, int at)
    {
        if (!raw.Contains('\\'))
        {
            return raw;
        }

        var sb = new StringBuilder(raw.Length);
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] != '\\' || i + 1 >= raw.Length)
            {
                sb.Append(raw[i]);
                continue;
            }

            var e = raw[++i];
            switch (e)
            {
                case '\n': break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case 'x':
                    sb.Append(ReadHex(raw, ref i, 2, at));
                    break;
                case 'u':
                    sb.Append(ReadHex(raw, ref i, 4, at));
                    break;
                case 'U':
                    sb.Append(ReadHex(raw, ref i, 8, at));
                    break;
                case >= '0' and <= '7':
                    var value = e - '0';
                    for (var n = 0; n < 2 && i + 1 < raw.Length && raw[i + 1] is >= '0' and <= '7'; n++)
                    {
                        value = value * 8 + (raw[++i] - '0');
                    }

                    sb.Append((char)value);
                    break;
                case 'N':
                    throw SyntaxError("\\N{...} escapes are not supported in string literals", at);
                default:
                    sb.Append('\\').Append(e);
                    break;
            }
        }

        return sb.ToString();
    }

    private string ReadHex(string raw, ref int i, int count, int at)
    {
        var escape = raw[i];
        var hex = raw.Length - (i + 1) >= count ? raw.Substring(i + 1, count) : "";
        if (hex.Length != count || !hex.All(char.IsAsciiHexDigit))
        {
            throw SyntaxError($"truncated \\{escape} escape", at);
        }

        var value = int.Parse(hex, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        if (value > 0x10FFFF || value < 0)
        {
            throw SyntaxError($"illegal Unicode character \\{escape}{hex}", at);
        }

        i += count;
        return value <= 0xFFFF ? ((char)value).ToString() : char.ConvertFromUtf32(value);
    }

    private int SkipWhitespace(int i)
    {
        while (i < _source.Length && PyString.IsSpace(_source[i]))
        {
            i++;
        }

        return i;
    }

    private static bool IsAllWhitespace(string text, int from)
    {
        for (var i = from; i < text.Length; i++)
        {
            if (!PyString.IsSpace(text[i]))
            {
                return false;
            }
        }

        return true;
    }

    private void Emit(TokenKind kind, string value, object? literal, int at)
    {
        var (line, column) = Position(at);
        _tokens.Add(new JinjaToken(kind, value, literal, line, column));
    }

    private (int Line, int Column) Position(int at)
    {
        var index = _lineStarts.BinarySearch(at);
        if (index < 0)
        {
            index = ~index - 1;
        }

        return (index + 1, at - _lineStarts[index] + 1);
    }

    private JinjaException SyntaxError(string message, int at)
    {
        var (line, column) = Position(at);
        return JinjaErrors.Syntax(message, line, column);
    }
}
