using System.Globalization;

namespace SharpTune.Tokenization;

/// <summary>
/// A small backtracking regex engine over Unicode code points, for the pre-tokenizer patterns of tokenizer.json
/// files (Oniguruma syntax). .NET's Regex works on UTF-16 units, so \p{L} there misses astral letters; here every
/// class test sees a whole code point. It supports what tokenizer patterns use: alternation, (?:...), (?i:...),
/// classes with \p{..}/\s/\d/\w and ranges, greedy and lazy quantifiers, lookahead, ^ $ \A \z. Anything else is
/// rejected when the pattern is parsed.
/// </summary>
internal sealed class CodePointRegex
{
    private readonly Node _root;

    /// <summary>Whether a code point can begin a match (null: anything can, or the pattern can match empty).</summary>
    private readonly Func<int, bool>? _canStart;

    private CodePointRegex(Node root)
    {
        _root = root;
        _canStart = FirstCodePoints(root);
    }

    /// <summary>Parses <paramref name="pattern"/>; <paramref name="where"/> names the file and field for errors.</summary>
    public static CodePointRegex Parse(string pattern, string where) => new(new Parser(pattern, where).ParseAll());

    /// <summary>Appends the non-empty, non-overlapping leftmost matches in <paramref name="text"/> as UTF-16
    /// (start, end) pairs relative to the span, like Oniguruma's find_iter.</summary>
    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
    {
        var codePoints = new int[text.Length];
        var utf16Index = new int[text.Length + 1];
        int count = 0;
        for (int i = 0; i < text.Length;)
        {
            utf16Index[count] = i;
            codePoints[count++] = UnicodeClass.CodePointAt(text, i, out int length);
            i += length;
        }
        utf16Index[count] = text.Length;
        var matcher = new Matcher(codePoints, count);
        int pos = 0;
        while (pos < count)
        {
            int start = pos;
            int end = -1;
            for (; start < count; start++)
            {
                if (_canStart is not null && !_canStart(codePoints[start]))
                {
                    continue;
                }
                end = matcher.MatchAt(_root, start);
                if (end >= 0)
                {
                    break;
                }
            }
            if (end < 0)
            {
                return;
            }
            if (end == start)
            {
                pos = start + 1;
                continue;
            }
            matches.Add((utf16Index[start], utf16Index[end]));
            pos = end;
        }
    }

    /// <summary>A test for the code points a match of <paramref name="node"/> can begin with, or null when that is
    /// not simply known (then every position is tried).</summary>
    private static Func<int, bool>? FirstCodePoints(Node node)
    {
        switch (node.Kind)
        {
            case Kind.Set:
            case Kind.Literal:
                return node.MatchesOne;
            case Kind.Repeat when node.Min >= 1:
                return FirstCodePoints(node.Children[0]);
            case Kind.Alternation:
                var alternatives = node.Children.Select(FirstCodePoints).ToArray();
                return alternatives.Any(a => a is null) ? null : cp => alternatives.Any(a => a!(cp));
            case Kind.Sequence:
                // Optional leading items add their first code points; the first required item ends the list.
                var firsts = new List<Func<int, bool>>();
                foreach (var item in node.Children)
                {
                    bool optional = item.Kind == Kind.Repeat && item.Min == 0;
                    var first = FirstCodePoints(optional ? item.Children[0] : item);
                    if (first is null)
                    {
                        return null;
                    }
                    firsts.Add(first);
                    if (!optional)
                    {
                        return cp => firsts.Any(f => f(cp));
                    }
                }
                return null;
            default:
                return null;
        }
    }

    private enum Kind { Set, Literal, Sequence, Alternation, Repeat, Lookahead, LineStart, LineEnd, TextStart, TextEnd }

    private sealed class Node
    {
        public Kind Kind;
        public Node[] Children = [];
        public CharSet? Set;
        public int CodePoint;
        public bool IgnoreCase;
        public int Min;
        public int Max;
        public bool Greedy = true;
        public bool Negate;

        public bool IsSingleCodePoint => Kind is Kind.Set or Kind.Literal;

        public bool MatchesOne(int cp) => Kind == Kind.Literal
            ? cp == CodePoint || (IgnoreCase && UnicodeClass.Fold(cp) == UnicodeClass.Fold(CodePoint))
            : Set!.Contains(cp, IgnoreCase);
    }

    /// <summary>A bracket class or class escape: ranges, category flags, and negated category flags.</summary>
    private sealed class CharSet
    {
        public readonly List<(int Low, int High)> Ranges = [];
        public UnicodeClass.Flags AnyOf;
        public readonly List<UnicodeClass.Flags> NoneOf = [];
        public bool Word;
        public bool NotWord;
        public bool Negated;
        public bool AnyButNewline;

        public bool Contains(int cp, bool ignoreCase)
        {
            if (ContainsExact(cp))
            {
                return true;
            }
            if (!ignoreCase)
            {
                return false;
            }
            int folded = UnicodeClass.Fold(cp);
            if (folded != cp && ContainsExact(folded))
            {
                return true;
            }
            int upper = cp < 0x10000 ? char.ToUpperInvariant((char)cp) : cp;
            return upper != cp && ContainsExact(upper);
        }

        private bool ContainsExact(int cp) => Negated != ContainsPositive(cp);

        private bool ContainsPositive(int cp)
        {
            if (AnyButNewline && cp != '\n')
            {
                return true;
            }
            foreach (var (low, high) in Ranges)
            {
                if (cp >= low && cp <= high)
                {
                    return true;
                }
            }
            var flags = UnicodeClass.Of(cp);
            if ((flags & AnyOf) != 0)
            {
                return true;
            }
            foreach (var mask in NoneOf)
            {
                if ((flags & mask) == 0)
                {
                    return true;
                }
            }
            return (Word && UnicodeClass.IsWordChar(cp)) || (NotWord && !UnicodeClass.IsWordChar(cp));
        }

        public void Add(CharSet other)
        {
            if (other.Negated)
            {
                throw new InvalidOperationException("negated sets are merged by the parser");
            }
            Ranges.AddRange(other.Ranges);
            AnyOf |= other.AnyOf;
            NoneOf.AddRange(other.NoneOf);
            Word |= other.Word;
            NotWord |= other.NotWord;
            AnyButNewline |= other.AnyButNewline;
        }
    }

    private sealed class Matcher(int[] codePoints, int count)
    {
        /// <summary>Returns the end of the first match found at <paramref name="start"/> (in alternation and
        /// quantifier priority order, as a backtracking engine does), or -1.</summary>
        private int _end;
        private Func<int, bool>? _accept;

        public int MatchAt(Node root, int start)
        {
            _end = -1;
            _accept ??= p =>
            {
                _end = p;
                return true;
            };
            Match(root, start, _accept);
            return _end;
        }

        private bool Match(Node node, int pos, Func<int, bool> next)
        {
            switch (node.Kind)
            {
                case Kind.Set:
                case Kind.Literal:
                    return pos < count && node.MatchesOne(codePoints[pos]) && next(pos + 1);
                case Kind.Sequence:
                    return MatchSequence(node.Children, 0, pos, next);
                case Kind.Alternation:
                    foreach (var alternative in node.Children)
                    {
                        if (Match(alternative, pos, next))
                        {
                            return true;
                        }
                    }
                    return false;
                case Kind.Repeat:
                    return node.Children[0].IsSingleCodePoint
                        ? MatchSimpleRepeat(node, pos, next)
                        : MatchRepeat(node, 0, pos, next);
                case Kind.Lookahead:
                    bool found = Match(node.Children[0], pos, _ => true);
                    return found != node.Negate && next(pos);
                case Kind.LineStart:
                    return (pos == 0 || codePoints[pos - 1] == '\n') && next(pos);
                case Kind.LineEnd:
                    return (pos == count || codePoints[pos] == '\n') && next(pos);
                case Kind.TextStart:
                    return pos == 0 && next(pos);
                case Kind.TextEnd:
                    return pos == count && next(pos);
                default:
                    throw new InvalidOperationException(node.Kind.ToString());
            }
        }

        private bool MatchSequence(Node[] items, int index, int pos, Func<int, bool> next) => index == items.Length
            ? next(pos)
            : Match(items[index], pos, p => MatchSequence(items, index + 1, p, next));

        // A quantified single code point: count the run once, then try lengths in priority order.
        private bool MatchSimpleRepeat(Node node, int pos, Func<int, bool> next)
        {
            var item = node.Children[0];
            int available = 0;
            while (available < node.Max && pos + available < count && item.MatchesOne(codePoints[pos + available]))
            {
                available++;
            }
            if (available < node.Min)
            {
                return false;
            }
            if (node.Greedy)
            {
                for (int n = available; n >= node.Min; n--)
                {
                    if (next(pos + n))
                    {
                        return true;
                    }
                }
                return false;
            }
            for (int n = node.Min; n <= available; n++)
            {
                if (next(pos + n))
                {
                    return true;
                }
            }
            return false;
        }

        private bool MatchRepeat(Node node, int done, int pos, Func<int, bool> next)
        {
            bool TryMore() => done < node.Max
                && Match(node.Children[0], pos, p => p != pos && MatchRepeat(node, done + 1, p, next));
            bool TryStop() => done >= node.Min && next(pos);
            return node.Greedy ? TryMore() || TryStop() : TryStop() || TryMore();
        }
    }

    private sealed class Parser(string pattern, string where)
    {
        private int _pos;

        public Node ParseAll()
        {
            var node = ParseAlternation(ignoreCase: false);
            if (_pos != pattern.Length)
            {
                throw Unsupported($"unexpected '{pattern[_pos]}'");
            }
            return node;
        }

        private SharpTuneException Unsupported(string what) => new(
            $"{where}: unsupported regex feature ({ErrorText.Message(what, 120)}) at position {_pos} of pattern {SharpTuneException.Quote(pattern, 120)}");

        private bool AtEnd => _pos >= pattern.Length;

        private int Peek() => char.ConvertToUtf32(pattern, _pos);

        private int Read()
        {
            int cp = char.ConvertToUtf32(pattern, _pos);
            _pos += cp > 0xFFFF ? 2 : 1;
            return cp;
        }

        private bool TryRead(string token)
        {
            if (string.CompareOrdinal(pattern, _pos, token, 0, token.Length) == 0)
            {
                _pos += token.Length;
                return true;
            }
            return false;
        }

        private Node ParseAlternation(bool ignoreCase)
        {
            var alternatives = new List<Node> { ParseSequence(ref ignoreCase) };
            while (!AtEnd && pattern[_pos] == '|')
            {
                _pos++;
                alternatives.Add(ParseSequence(ref ignoreCase));
            }
            return alternatives.Count == 1 ? alternatives[0] : new Node { Kind = Kind.Alternation, Children = [.. alternatives] };
        }

        private Node ParseSequence(ref bool ignoreCase)
        {
            var items = new List<Node>();
            while (!AtEnd && pattern[_pos] != '|' && pattern[_pos] != ')')
            {
                if (TryRead("(?i)"))
                {
                    ignoreCase = true;
                    continue;
                }
                if (TryRead("(?-i)"))
                {
                    ignoreCase = false;
                    continue;
                }
                var atom = ParseAtom(ignoreCase);
                items.Add(ParseQuantifier(atom));
            }
            return items.Count == 1 ? items[0] : new Node { Kind = Kind.Sequence, Children = [.. items] };
        }

        private Node ParseQuantifier(Node atom)
        {
            if (AtEnd)
            {
                return atom;
            }
            int min;
            int max;
            switch (pattern[_pos])
            {
                case '*':
                    (min, max) = (0, int.MaxValue);
                    _pos++;
                    break;
                case '+':
                    (min, max) = (1, int.MaxValue);
                    _pos++;
                    break;
                case '?':
                    (min, max) = (0, 1);
                    _pos++;
                    break;
                case '{' when TryParseBraces(out min, out max):
                    break;
                default:
                    return atom;
            }
            bool greedy = true;
            if (!AtEnd && pattern[_pos] == '?')
            {
                greedy = false;
                _pos++;
            }
            else if (!AtEnd && pattern[_pos] == '+')
            {
                throw Unsupported("possessive quantifier");
            }
            return new Node { Kind = Kind.Repeat, Children = [atom], Min = min, Max = max, Greedy = greedy };
        }

        private bool TryParseBraces(out int min, out int max)
        {
            min = max = 0;
            int close = pattern.IndexOf('}', _pos);
            if (close < 0)
            {
                return false;
            }
            string body = pattern[(_pos + 1)..close];
            int comma = body.IndexOf(',');
            var inv = CultureInfo.InvariantCulture;
            if (comma < 0)
            {
                if (!int.TryParse(body, NumberStyles.None, inv, out min))
                {
                    return false;
                }
                max = min;
            }
            else
            {
                if (!int.TryParse(body[..comma], NumberStyles.None, inv, out min))
                {
                    return false;
                }
                string upper = body[(comma + 1)..];
                if (upper.Length == 0)
                {
                    max = int.MaxValue;
                }
                else if (!int.TryParse(upper, NumberStyles.None, inv, out max))
                {
                    return false;
                }
            }
            _pos = close + 1;
            return true;
        }

        private Node ParseAtom(bool ignoreCase)
        {
            int c = Peek();
            switch (c)
            {
                case '(':
                    return ParseGroup(ignoreCase);
                case '[':
                    _pos++;
                    return new Node { Kind = Kind.Set, Set = ParseClass(), IgnoreCase = ignoreCase };
                case '.':
                    _pos++;
                    return new Node { Kind = Kind.Set, Set = new CharSet { AnyButNewline = true } };
                case '^':
                    _pos++;
                    return new Node { Kind = Kind.LineStart };
                case '$':
                    _pos++;
                    return new Node { Kind = Kind.LineEnd };
                case '\\':
                    _pos++;
                    if (TryRead("A"))
                    {
                        return new Node { Kind = Kind.TextStart };
                    }
                    if (TryRead("z"))
                    {
                        return new Node { Kind = Kind.TextEnd };
                    }
                    var escaped = ParseEscape(inClass: false);
                    return escaped.Set is { } set
                        ? new Node { Kind = Kind.Set, Set = set, IgnoreCase = ignoreCase }
                        : new Node { Kind = Kind.Literal, CodePoint = escaped.CodePoint, IgnoreCase = ignoreCase };
                case '*' or '+' or '?':
                    throw Unsupported("quantifier with nothing to repeat");
                default:
                    Read();
                    return new Node { Kind = Kind.Literal, CodePoint = c, IgnoreCase = ignoreCase };
            }
        }

        private Node ParseGroup(bool ignoreCase)
        {
            _pos++; // '('
            Node inner;
            if (TryRead("?:"))
            {
                inner = ParseAlternation(ignoreCase);
            }
            else if (TryRead("?i:"))
            {
                inner = ParseAlternation(true);
            }
            else if (TryRead("?-i:"))
            {
                inner = ParseAlternation(false);
            }
            else if (TryRead("?="))
            {
                inner = new Node { Kind = Kind.Lookahead, Children = [ParseAlternation(ignoreCase)] };
            }
            else if (TryRead("?!"))
            {
                inner = new Node { Kind = Kind.Lookahead, Children = [ParseAlternation(ignoreCase)], Negate = true };
            }
            else if (TryRead("?<=") || TryRead("?<!"))
            {
                throw Unsupported("lookbehind");
            }
            else if (TryRead("?<"))
            {
                int close = pattern.IndexOf('>', _pos);
                if (close < 0)
                {
                    throw Unsupported("unterminated group name");
                }
                _pos = close + 1;
                inner = ParseAlternation(ignoreCase);
            }
            else if (!AtEnd && pattern[_pos] == '?')
            {
                throw Unsupported("group kind (atomic group or option)");
            }
            else
            {
                inner = ParseAlternation(ignoreCase);
            }
            if (AtEnd || pattern[_pos] != ')')
            {
                throw Unsupported("missing ')'");
            }
            _pos++;
            return inner;
        }

        private CharSet ParseClass()
        {
            var set = new CharSet();
            if (!AtEnd && pattern[_pos] == '^')
            {
                set.Negated = true;
                _pos++;
            }
            bool first = true;
            while (true)
            {
                if (AtEnd)
                {
                    throw Unsupported("missing ']'");
                }
                if (pattern[_pos] == ']' && !first)
                {
                    _pos++;
                    return set;
                }
                if (TryRead("&&") || (pattern[_pos] == '[' && !first))
                {
                    throw Unsupported("nested class or class intersection");
                }
                first = false;
                int low;
                if (pattern[_pos] == '\\')
                {
                    _pos++;
                    var escaped = ParseEscape(inClass: true);
                    if (escaped.Set is { } inner)
                    {
                        set.Add(inner);
                        continue;
                    }
                    low = escaped.CodePoint;
                }
                else
                {
                    low = Read();
                }
                int high = low;
                if (_pos + 1 < pattern.Length && pattern[_pos] == '-' && pattern[_pos + 1] != ']')
                {
                    _pos++;
                    if (pattern[_pos] == '\\')
                    {
                        _pos++;
                        var escaped = ParseEscape(inClass: true);
                        if (escaped.Set is not null)
                        {
                            throw Unsupported("class escape as range end");
                        }
                        high = escaped.CodePoint;
                    }
                    else
                    {
                        high = Read();
                    }
                    if (high < low)
                    {
                        throw Unsupported("reversed range");
                    }
                }
                set.Ranges.Add((low, high));
            }
        }

        /// <summary>Parses what follows a backslash: either a class (\s, \p{L}, ...) or one code point.</summary>
        private (CharSet? Set, int CodePoint) ParseEscape(bool inClass)
        {
            if (AtEnd)
            {
                throw Unsupported("trailing backslash");
            }
            int c = Read();
            switch (c)
            {
                case 's': return (new CharSet { AnyOf = UnicodeClass.Flags.Space }, 0);
                case 'S': return (Negated(UnicodeClass.Flags.Space), 0);
                case 'd': return (new CharSet { AnyOf = UnicodeClass.Flags.DecimalDigit }, 0);
                case 'D': return (Negated(UnicodeClass.Flags.DecimalDigit), 0);
                case 'w': return (new CharSet { Word = true }, 0);
                case 'W': return (new CharSet { NotWord = true }, 0);
                case 'p':
                case 'P':
                    return (ParseProperty(negated: c == 'P'), 0);
                case 'n': return (null, '\n');
                case 'r': return (null, '\r');
                case 't': return (null, '\t');
                case 'f': return (null, '\f');
                case 'v': return (null, '\v');
                case 'a': return (null, '\a');
                case 'e': return (null, 0x1B);
                case '0': return (null, 0);
                case 'x':
                    return (null, ParseHex(2));
                case 'u':
                    return (null, ParseHex(4));
                default:
                    if (c < 0x80 && char.IsLetterOrDigit((char)c))
                    {
                        throw Unsupported($"escape \\{(char)c}{(inClass ? " in class" : "")}");
                    }
                    return (null, c);
            }
        }

        private static CharSet Negated(UnicodeClass.Flags flags)
        {
            var set = new CharSet();
            set.NoneOf.Add(flags);
            return set;
        }

        private int ParseHex(int digits)
        {
            string hex;
            if (!AtEnd && pattern[_pos] == '{')
            {
                int close = pattern.IndexOf('}', _pos);
                if (close < 0)
                {
                    throw Unsupported("unterminated \\x{...}");
                }
                hex = pattern[(_pos + 1)..close];
                _pos = close + 1;
            }
            else
            {
                if (_pos + digits > pattern.Length)
                {
                    throw Unsupported("short hex escape");
                }
                hex = pattern.Substring(_pos, digits);
                _pos += digits;
            }
            if (!int.TryParse(hex, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int value))
            {
                throw Unsupported($"bad hex escape '{hex}'");
            }
            return value;
        }

        private CharSet ParseProperty(bool negated)
        {
            if (AtEnd || pattern[_pos] != '{')
            {
                throw Unsupported("\\p without {name}");
            }
            int close = pattern.IndexOf('}', _pos);
            if (close < 0)
            {
                throw Unsupported("unterminated \\p{");
            }
            string name = pattern[(_pos + 1)..close];
            _pos = close + 1;
            if (name.StartsWith('^'))
            {
                negated = !negated;
                name = name[1..];
            }
            var flags = name switch
            {
                "L" or "Letter" => UnicodeClass.Flags.Letter,
                "N" or "Number" => UnicodeClass.Flags.Number,
                "Nd" or "Decimal_Number" => UnicodeClass.Flags.DecimalDigit,
                "P" or "Punctuation" => UnicodeClass.Flags.Punctuation,
                "S" or "Symbol" => UnicodeClass.Flags.Symbol,
                "M" or "Mark" => UnicodeClass.Flags.Mark,
                _ => throw Unsupported($"Unicode property \\p{{{name}}}"),
            };
            return negated ? Negated(flags) : new CharSet { AnyOf = flags };
        }
    }
}
