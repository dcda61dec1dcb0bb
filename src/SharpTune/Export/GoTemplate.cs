using System.Text;

namespace SharpTune.Export;

/// <summary>
/// A small interpreter for the part of Go's text/template language that Ollama's chat templates use (and that
/// <see cref="Ollama"/> writes): text, {{ }} actions with - trim markers, string and integer literals, .Field,
/// $.Field, $var, $var := expr, if / else if / else / end, range $i, $x := list, and the functions eq, ne, and,
/// or, not, len, slice. It exists to check a generated Modelfile template against our Jinja rendering.
/// </summary>
public static class GoTemplate
{
    abstract record Node;
    sealed record Text(string Value) : Node;
    sealed record Print(Expr Value) : Node;
    sealed record Assign(string Name, Expr Value) : Node;
    sealed record If(List<(Expr? Condition, List<Node> Body)> Branches) : Node;
    sealed record Range(string? Index, string? Item, Expr List, List<Node> Body) : Node;

    abstract record Expr;
    sealed record Literal(object Value) : Expr;
    sealed record Field(string? Variable, string[] Path) : Expr;   // Variable null: the dot; "" : $ (the root)
    sealed record Call(string Function, List<Expr> Args) : Expr;

    /// <summary>Renders <paramref name="template"/> with <paramref name="data"/> (dictionaries, lists, strings, ints, bools).</summary>
    public static string Render(string template, IReadOnlyDictionary<string, object?> data)
    {
        var actions = Lex(template);
        int pos = 0;
        var body = ParseBlock(actions, ref pos, out string? end);
        if (end is not null) throw new FormatException($"Go template: unexpected {{{{{end}}}}}");
        var sb = new StringBuilder();
        var vars = new Dictionary<string, object?> { [""] = data };
        Execute(body, data, vars, sb);
        return sb.ToString();
    }

    // Lexing: alternating text and action strings, with trim markers applied to the neighbouring text.
    static List<(bool IsAction, string Value)> Lex(string s)
    {
        var items = new List<(bool, string)>();
        int i = 0;
        while (i < s.Length)
        {
            int open = s.IndexOf("{{", i, StringComparison.Ordinal);
            if (open < 0) { items.Add((false, s[i..])); break; }
            string text = s[i..open];
            int close = FindClose(s, open + 2);
            string action = s[(open + 2)..close];
            if (action.StartsWith("- ")) { text = text.TrimEnd(' ', '\t', '\r', '\n'); action = action[1..]; }
            items.Add((false, text));
            bool trimAfter = action.EndsWith(" -");
            if (trimAfter) action = action[..^1];
            items.Add((true, action.Trim()));
            i = close + 2;
            if (trimAfter) while (i < s.Length && s[i] is ' ' or '\t' or '\r' or '\n') i++;
        }
        return items;
    }

    static int FindClose(string s, int from)
    {
        bool inString = false;
        for (int i = from; i < s.Length - 1; i++)
        {
            if (inString) { if (s[i] == '\\') i++; else if (s[i] == '"') inString = false; continue; }
            if (s[i] == '"') inString = true;
            else if (s[i] == '}' && s[i + 1] == '}') return i;
        }
        throw new FormatException("Go template: unclosed {{");
    }

    static List<Node> ParseBlock(List<(bool IsAction, string Value)> items, ref int pos, out string? end)
    {
        var nodes = new List<Node>();
        while (pos < items.Count)
        {
            var (isAction, value) = items[pos++];
            if (!isAction) { if (value.Length > 0) nodes.Add(new Text(value)); continue; }
            if (value == "end" || value == "else" || value.StartsWith("else if ")) { end = value; return nodes; }
            if (value.StartsWith("if "))
            {
                var branches = new List<(Expr?, List<Node>)>();
                Expr? condition = ParseExpr(value[3..]);
                while (true)
                {
                    var body = ParseBlock(items, ref pos, out var stop);
                    branches.Add((condition, body));
                    if (stop == "end") break;
                    if (stop == "else") condition = null;
                    else if (stop is not null && stop.StartsWith("else if ")) condition = ParseExpr(stop[8..]);
                    else throw new FormatException("Go template: if without end");
                }
                nodes.Add(new If(branches));
            }
            else if (value.StartsWith("range "))
            {
                string spec = value[6..];
                string? index = null, item = null;
                int assign = spec.IndexOf(":=", StringComparison.Ordinal);
                if (assign >= 0)
                {
                    var names = spec[..assign].Split(',', StringSplitOptions.TrimEntries);
                    (index, item) = names.Length == 2 ? (names[0], names[1]) : (null, names[0]);
                    spec = spec[(assign + 2)..];
                }
                var body = ParseBlock(items, ref pos, out var stop);
                if (stop != "end") throw new FormatException("Go template: range without end");
                nodes.Add(new Range(index, item, ParseExpr(spec), body));
            }
            else if (value.StartsWith('$') && value.Contains(":="))
            {
                int assign = value.IndexOf(":=", StringComparison.Ordinal);
                nodes.Add(new Assign(value[..assign].Trim(), ParseExpr(value[(assign + 2)..])));
            }
            else nodes.Add(new Print(ParseExpr(value)));
        }
        end = null;
        return nodes;
    }

    static Expr ParseExpr(string s)
    {
        int pos = 0;
        var terms = ParseTerms(s, ref pos);
        if (pos < s.Length) throw new FormatException($"Go template: unexpected ')' in '{s}'");
        return Combine(terms, s);
    }

    static Expr Combine(List<Expr> terms, string source) => terms switch
    {
        [var single] => single,
        [Field { Variable: null, Path: [var fn] }, .. var args] when !fn.StartsWith('.') => new Call(fn, args),
        _ => throw new FormatException($"Go template: cannot read '{source}'"),
    };

    static List<Expr> ParseTerms(string s, ref int pos)
    {
        var terms = new List<Expr>();
        while (pos < s.Length)
        {
            char c = s[pos];
            if (char.IsWhiteSpace(c)) { pos++; continue; }
            if (c == ')') break;
            if (c == '(')
            {
                pos++;
                var inner = ParseTerms(s, ref pos);
                if (pos >= s.Length || s[pos] != ')') throw new FormatException($"Go template: missing ')' in '{s}'");
                pos++;
                terms.Add(Combine(inner, s));
                continue;
            }
            if (c == '"')
            {
                var sb = new StringBuilder();
                pos++;
                while (s[pos] != '"')
                {
                    if (s[pos] == '\\')
                    {
                        char e = s[++pos];
                        if (e == 'u') { sb.Append((char)Convert.ToInt32(s.Substring(pos + 1, 4), 16)); pos += 4; }
                        else sb.Append(e switch { 'n' => '\n', 't' => '\t', 'r' => '\r', _ => e });
                    }
                    else sb.Append(s[pos]);
                    pos++;
                }
                pos++;
                terms.Add(new Literal(sb.ToString()));
                continue;
            }
            int start = pos;
            while (pos < s.Length && !char.IsWhiteSpace(s[pos]) && s[pos] is not ('(' or ')')) pos++;
            string word = s[start..pos];
            if (int.TryParse(word, out int n)) terms.Add(new Literal(n));
            else if (word is "true" or "false") terms.Add(new Literal(word == "true"));
            else if (word.StartsWith('.')) terms.Add(new Field(null, word.Split('.', StringSplitOptions.RemoveEmptyEntries)));
            else if (word.StartsWith('$'))
            {
                var parts = word.Split('.');
                terms.Add(new Field(parts[0] == "$" ? "" : parts[0], parts[1..]));
            }
            else terms.Add(new Field(null, [word]));   // a function name
        }
        return terms;
    }

    static void Execute(List<Node> nodes, object? dot, Dictionary<string, object?> vars, StringBuilder sb)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case Text t: sb.Append(t.Value); break;
                case Print p: sb.Append(Format(Eval(p.Value, dot, vars))); break;
                case Assign a: vars[a.Name] = Eval(a.Value, dot, vars); break;
                case If i:
                    foreach (var (condition, body) in i.Branches)
                        if (condition is null || Truthy(Eval(condition, dot, vars))) { Execute(body, dot, vars, sb); break; }
                    break;
                case Range r:
                    var list = Eval(r.List, dot, vars) as System.Collections.IList ?? throw new FormatException("Go template: range over a non-list");
                    for (int k = 0; k < list.Count; k++)
                    {
                        var scope = new Dictionary<string, object?>(vars);
                        if (r.Index is not null) scope[r.Index] = k;
                        if (r.Item is not null) scope[r.Item] = list[k];
                        Execute(r.Body, list[k], scope, sb);
                    }
                    break;
            }
        }
    }

    static object? Eval(Expr e, object? dot, Dictionary<string, object?> vars)
    {
        switch (e)
        {
            case Literal l: return l.Value;
            case Field f:
                object? v = f.Variable is null ? dot : vars.TryGetValue(f.Variable, out var found) ? found : throw new FormatException($"Go template: undefined variable {f.Variable}");
                foreach (var name in f.Path)
                    v = v is IReadOnlyDictionary<string, object?> d ? d.GetValueOrDefault(name) : throw new FormatException($"Go template: no field {name}");
                return v;
            case Call c:
                var args = c.Args.Select(a => Eval(a, dot, vars)).ToList();
                return c.Function switch
                {
                    "eq" => Equals(Normalize(args[0]), Normalize(args[1])),
                    "ne" => !Equals(Normalize(args[0]), Normalize(args[1])),
                    "and" => args.All(Truthy),
                    "or" => args.Any(Truthy),
                    "not" => !Truthy(args[0]),
                    "len" => args[0] switch { string s => s.Length, System.Collections.ICollection l => l.Count, _ => 0 },
                    "slice" => ((System.Collections.IList)args[0]!).Cast<object?>().Skip((int)args[1]!).ToList(),
                    var fn => throw new FormatException($"Go template: function {fn} is not supported here"),
                };
            default: throw new InvalidOperationException();
        }
    }

    static object? Normalize(object? v) => v is long l ? (int)l : v;

    static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        string s => s.Length > 0,
        int i => i != 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    static string Format(object? v) => v switch { null => "<no value>", bool b => b ? "true" : "false", _ => v.ToString() ?? "" };
}
