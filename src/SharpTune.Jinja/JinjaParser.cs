namespace SharpTune.Jinja;

/// <summary>
/// Builds the syntax tree from lexer tokens, following jinja2's grammar and operator precedence
/// (condexpr &lt; or &lt; and &lt; not &lt; compare &lt; + - &lt; ~ &lt; * / // % &lt; ** &lt; unary &lt; filters, tests, postfix).
/// </summary>
internal sealed class JinjaParser
{
    private static readonly HashSet<string> UnsupportedTags =
        ["block", "extends", "include", "import", "from", "call", "autoescape", "do"];

    /// <summary>Nesting of blocks and expressions beyond any real template; deeper input would only cost stack.</summary>
    public const int MaxNesting = 100;

    private readonly List<JinjaToken> _tokens;
    private int _index;
    private int _loopDepth;
    private int _nesting;

    private JinjaParser(List<JinjaToken> tokens)
    {
        _tokens = tokens;
    }

    public static IReadOnlyList<Node> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        return parser.Subparse(null);
    }

    private JinjaToken Current => _tokens[_index];

    private JinjaToken Look => _tokens[Math.Min(_index + 1, _tokens.Count - 1)];

    private JinjaToken Next()
    {
        var token = _tokens[_index];
        if (_index < _tokens.Count - 1)
        {
            _index++;
        }

        return token;
    }

    private JinjaException Fail(string message, JinjaToken at) => JinjaErrors.Syntax(message, at.Line, at.Column);

    /// <summary>Counts one level of nesting for the duration of a recursive parse step.</summary>
    private T Nested<T>(Func<T> parse)
    {
        if (++_nesting > MaxNesting)
        {
            throw Fail($"nested more than {MaxNesting} levels deep", Current);
        }

        try
        {
            return parse();
        }
        finally
        {
            _nesting--;
        }
    }

    private JinjaToken Expect(TokenKind kind)
    {
        if (Current.Kind != kind)
        {
            throw Fail($"expected {Describe(kind)}, got '{Current.Describe()}'", Current);
        }

        return Next();
    }

    private JinjaToken ExpectName(string name)
    {
        if (!Current.IsName(name))
        {
            throw Fail($"expected '{name}', got '{Current.Describe()}'", Current);
        }

        return Next();
    }

    private void ExpectOperator(string op)
    {
        if (!Current.IsOperator(op))
        {
            throw Fail($"expected '{op}', got '{Current.Describe()}'", Current);
        }

        Next();
    }

    private bool SkipName(string name)
    {
        if (!Current.IsName(name))
        {
            return false;
        }

        Next();
        return true;
    }

    private bool SkipOperator(string op)
    {
        if (!Current.IsOperator(op))
        {
            return false;
        }

        Next();
        return true;
    }

    private static string Describe(TokenKind kind) => kind switch
    {
        TokenKind.Name => "name",
        _ => new JinjaToken(kind, "", null, 0, 0).Describe(),
    };

    private List<Node> Subparse(string[]? endTags)
    {
        var body = new List<Node>();
        while (Current.Kind != TokenKind.Eof)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Data:
                    body.Add(new TextNode(token.Value, token.Line));
                    Next();
                    break;
                case TokenKind.VariableBegin:
                    Next();
                    body.Add(new OutputNode(ParseTuple(withCondexpr: true), token.Line));
                    Expect(TokenKind.VariableEnd);
                    break;
                case TokenKind.BlockBegin:
                    Next();
                    if (endTags is not null && Current.Kind == TokenKind.Name && endTags.Contains(Current.Value))
                    {
                        return body;
                    }

                    body.AddRange(Nested(ParseStatement));
                    Expect(TokenKind.BlockEnd);
                    break;
                default:
                    throw Fail($"unexpected '{token.Describe()}'", token);
            }
        }

        if (endTags is not null)
        {
            var expected = string.Join(" or ", endTags.Select(t => $"'{t}'"));
            throw Fail($"unexpected end of template, expected {expected}", Current);
        }

        return body;
    }

    /// <summary>Parses "%}" body up to one of <paramref name="endTags"/>; the end tag's name is left current unless dropped.</summary>
    private List<Node> ParseStatements(string[] endTags, bool dropEndTag)
    {
        SkipOperator(":");
        Expect(TokenKind.BlockEnd);
        var body = Subparse(endTags);
        if (dropEndTag)
        {
            Next();
        }

        return body;
    }

    private List<Node> ParseStatement()
    {
        var token = Current;
        if (token.Kind != TokenKind.Name)
        {
            throw Fail("tag name expected", token);
        }

        switch (token.Value)
        {
            case "for": return [ParseFor()];
            case "if": return [ParseIf()];
            case "set": return [ParseSet()];
            case "macro": return [ParseMacro()];
            case "filter": return [ParseFilterBlock()];
            case "with": return [ParseWith()];
            case "print": return ParsePrint();
            case "generation":
                Next();
                return [new GenerationNode(ParseStatements(["endgeneration"], dropEndTag: true), token.Line)];
            case "break" or "continue":
                if (_loopDepth == 0)
                {
                    throw Fail($"'{token.Value}' outside of a loop", token);
                }

                Next();
                return [token.Value == "break" ? new BreakNode(token.Line) : new ContinueNode(token.Line)];
        }

        if (UnsupportedTags.Contains(token.Value))
        {
            throw Fail($"the '{token.Value}' tag is not supported in chat templates", token);
        }

        throw Fail($"Encountered unknown tag '{token.Value}'.", token);
    }

    private ForNode ParseFor()
    {
        var line = ExpectName("for").Line;
        var target = ParseAssignTarget(extraEndTags: ["in"]);
        ExpectName("in");
        var iterable = ParseTuple(withCondexpr: false, extraEndTags: ["recursive"]);
        Expr? filter = null;
        if (SkipName("if"))
        {
            filter = ParseExpression();
        }

        if (Current.IsName("recursive"))
        {
            throw Fail("recursive for loops are not supported", Current);
        }

        _loopDepth++;
        var body = ParseStatements(["endfor", "else"], dropEndTag: false);
        _loopDepth--;
        IReadOnlyList<Node> otherwise = [];
        if (Next().Value == "else")
        {
            otherwise = ParseStatements(["endfor"], dropEndTag: true);
        }

        return new ForNode(target, iterable, filter, body, otherwise, line);
    }

    private IfNode ParseIf()
    {
        var line = ExpectName("if").Line;
        var branches = new List<(Expr, IReadOnlyList<Node>)>();
        IReadOnlyList<Node> otherwise = [];
        while (true)
        {
            var test = ParseTuple(withCondexpr: false);
            var body = ParseStatements(["elif", "else", "endif"], dropEndTag: false);
            branches.Add((test, body));
            var tag = Next();
            if (tag.Value == "elif")
            {
                continue;
            }

            if (tag.Value == "else")
            {
                otherwise = ParseStatements(["endif"], dropEndTag: true);
            }

            break;
        }

        return new IfNode(branches, otherwise, line);
    }

    private Node ParseSet()
    {
        var line = Next().Line;
        var target = ParseAssignTarget(withNamespace: true);
        if (SkipOperator("="))
        {
            return new SetNode(target, ParseTuple(), line);
        }

        var filter = ParseFilter(null, startInline: false);
        var body = ParseStatements(["endset"], dropEndTag: true);
        return new SetBlockNode(target, filter, body, line);
    }

    private MacroNode ParseMacro()
    {
        var line = Next().Line;
        var name = Expect(TokenKind.Name).Value;
        var parameters = new List<string>();
        var defaults = new List<Expr>();
        ExpectOperator("(");
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0)
            {
                ExpectOperator(",");
            }

            var parameter = Expect(TokenKind.Name);
            if (SkipOperator("="))
            {
                defaults.Add(ParseExpression());
            }
            else if (defaults.Count > 0)
            {
                throw Fail("non-default argument follows default argument", parameter);
            }

            parameters.Add(parameter.Value);
        }

        ExpectOperator(")");
        var savedDepth = _loopDepth;
        _loopDepth = 0;
        var body = ParseStatements(["endmacro"], dropEndTag: true);
        _loopDepth = savedDepth;
        return new MacroNode(name, parameters, defaults, body, line);
    }

    private FilterBlockNode ParseFilterBlock()
    {
        var line = Next().Line;
        var filter = ParseFilter(null, startInline: true)!;
        return new FilterBlockNode(filter, ParseStatements(["endfilter"], dropEndTag: true), line);
    }

    private WithNode ParseWith()
    {
        var line = Next().Line;
        var assignments = new List<(Expr, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0)
            {
                ExpectOperator(",");
            }

            var target = ParseAssignTarget();
            ExpectOperator("=");
            assignments.Add((target, ParseExpression()));
        }

        return new WithNode(assignments, ParseStatements(["endwith"], dropEndTag: true), line);
    }

    private List<Node> ParsePrint()
    {
        Next();
        var nodes = new List<Node>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (nodes.Count > 0)
            {
                ExpectOperator(",");
            }

            var line = Current.Line;
            nodes.Add(new OutputNode(ParseExpression(), line));
        }

        return nodes;
    }

    private Expr ParseAssignTarget(bool withTuple = true, string[]? extraEndTags = null, bool withNamespace = false)
    {
        var at = Current;
        var target = withTuple
            ? ParseTuple(simplified: true, extraEndTags: extraEndTags, withNamespace: withNamespace)
            : ParsePrimary(withNamespace);
        if (!CanAssign(target))
        {
            throw Fail($"can't assign to '{at.Describe()}'", at);
        }

        return target;
    }

    private static bool CanAssign(Expr target) => target switch
    {
        NameExpr name => name.Name is not ("true" or "false" or "none" or "True" or "False" or "None"),
        NamespaceRefExpr => true,
        TupleExpr tuple => tuple.Items.All(CanAssign),
        _ => false,
    };

    private Expr ParseExpression(bool withCondexpr = true) => withCondexpr ? ParseCondexpr() : ParseOr();

    private Expr ParseCondexpr()
    {
        var line = Current.Line;
        var expr = ParseOr();
        while (SkipName("if"))
        {
            var test = ParseOr();
            var otherwise = SkipName("else") ? Nested(ParseCondexpr) : null;
            expr = new ConditionalExpr(test, expr, otherwise, line);
            line = Current.Line;
        }

        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var line = Next().Line;
            left = new BinaryExpr(BinaryOp.Or, left, ParseAnd(), line);
        }

        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var line = Next().Line;
            left = new BinaryExpr(BinaryOp.And, left, ParseNot(), line);
        }

        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var line = Next().Line;
            return new UnaryExpr(UnaryOp.Not, Nested(ParseNot), line);
        }

        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var line = Current.Line;
        var first = ParseMath1();
        var rest = new List<(CompareOp, Expr)>();
        while (true)
        {
            CompareOp op;
            if (Current.Kind == TokenKind.Operator && Current.Value is "==" or "!=" or "<" or "<=" or ">" or ">=")
            {
                op = Next().Value switch
                {
                    "==" => CompareOp.Eq,
                    "!=" => CompareOp.Ne,
                    "<" => CompareOp.Lt,
                    "<=" => CompareOp.LtEq,
                    ">" => CompareOp.Gt,
                    _ => CompareOp.GtEq,
                };
            }
            else if (SkipName("in"))
            {
                op = CompareOp.In;
            }
            else if (Current.IsName("not") && Look.IsName("in"))
            {
                Next();
                Next();
                op = CompareOp.NotIn;
            }
            else
            {
                break;
            }

            rest.Add((op, ParseMath1()));
        }

        return rest.Count == 0 ? first : new CompareExpr(first, rest, line);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var token = Next();
            left = new BinaryExpr(token.Value == "+" ? BinaryOp.Add : BinaryOp.Sub, left, ParseConcat(), token.Line);
        }

        return left;
    }

    private Expr ParseConcat()
    {
        var line = Current.Line;
        var parts = new List<Expr> { ParseMath2() };
        while (SkipOperator("~"))
        {
            parts.Add(ParseMath2());
        }

        return parts.Count == 1 ? parts[0] : new ConcatExpr(parts, line);
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var token = Next();
            var op = token.Value switch
            {
                "*" => BinaryOp.Mul,
                "/" => BinaryOp.Div,
                "//" => BinaryOp.FloorDiv,
                _ => BinaryOp.Mod,
            };
            left = new BinaryExpr(op, left, ParsePow(), token.Line);
        }

        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary();
        while (Current.IsOperator("**"))
        {
            var line = Next().Line;
            left = new BinaryExpr(BinaryOp.Pow, left, ParseUnary(), line);
        }

        return left;
    }

    private Expr ParseUnary(bool withFilter = true)
    {
        var token = Current;
        Expr node;
        if (token.IsOperator("-"))
        {
            Next();
            node = new UnaryExpr(UnaryOp.Negate, Nested(() => ParseUnary(withFilter: false)), token.Line);
        }
        else if (token.IsOperator("+"))
        {
            Next();
            node = new UnaryExpr(UnaryOp.Plus, Nested(() => ParseUnary(withFilter: false)), token.Line);
        }
        else
        {
            node = Nested(() => ParsePrimary());
        }

        node = ParsePostfix(node);
        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary(bool withNamespace = false)
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                Next();
                if (token.Value is "true" or "True" or "false" or "False")
                {
                    return new ConstExpr(token.Value is "true" or "True", token.Line);
                }

                if (token.Value is "none" or "None")
                {
                    return new ConstExpr(null, token.Line);
                }

                if (withNamespace && Current.IsOperator("."))
                {
                    Next();
                    return new NamespaceRefExpr(token.Value, Expect(TokenKind.Name).Value, token.Line);
                }

                return new NameExpr(token.Value, token.Line);
            case TokenKind.String:
                var text = (string)token.Literal!;
                Next();
                while (Current.Kind == TokenKind.String)
                {
                    text += (string)Next().Literal!;
                }

                return new ConstExpr(text, token.Line);
            case TokenKind.Integer or TokenKind.Float:
                Next();
                return new ConstExpr(token.Literal, token.Line);
            case TokenKind.Operator when token.Value == "(":
                Next();
                var inner = ParseTuple(explicitParentheses: true);
                ExpectOperator(")");
                return inner;
            case TokenKind.Operator when token.Value == "[":
                return ParseList();
            case TokenKind.Operator when token.Value == "{":
                return ParseDict();
            default:
                throw Fail($"unexpected '{token.Describe()}'", token);
        }
    }

    private bool IsTupleEnd(string[]? extraEndTags) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd
        || Current.IsOperator(")")
        || (extraEndTags is not null && Current.Kind == TokenKind.Name && extraEndTags.Contains(Current.Value));

    private Expr ParseTuple(
        bool simplified = false, bool withCondexpr = true, string[]? extraEndTags = null,
        bool explicitParentheses = false, bool withNamespace = false)
    {
        var line = Current.Line;
        var items = new List<Expr>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0)
            {
                ExpectOperator(",");
            }

            if (IsTupleEnd(extraEndTags))
            {
                break;
            }

            items.Add(simplified ? ParsePrimary(withNamespace) : ParseExpression(withCondexpr));
            if (Current.IsOperator(","))
            {
                isTuple = true;
            }
            else
            {
                break;
            }
        }

        if (!isTuple)
        {
            if (items.Count > 0)
            {
                return items[0];
            }

            if (!explicitParentheses)
            {
                throw Fail($"Expected an expression, got '{Current.Describe()}'", Current);
            }
        }

        return new TupleExpr(items, line);
    }

    private ListExpr ParseList()
    {
        var line = Next().Line;
        var items = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (items.Count > 0)
            {
                ExpectOperator(",");
            }

            if (Current.IsOperator("]"))
            {
                break;
            }

            items.Add(ParseExpression());
        }

        ExpectOperator("]");
        return new ListExpr(items, line);
    }

    private DictExpr ParseDict()
    {
        var line = Next().Line;
        var pairs = new List<(Expr, Expr)>();
        while (!Current.IsOperator("}"))
        {
            if (pairs.Count > 0)
            {
                ExpectOperator(",");
            }

            if (Current.IsOperator("}"))
            {
                break;
            }

            var key = ParseExpression();
            ExpectOperator(":");
            pairs.Add((key, ParseExpression()));
        }

        ExpectOperator("}");
        return new DictExpr(pairs, line);
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator(".") || Current.IsOperator("["))
            {
                node = ParseSubscript(node);
            }
            else if (Current.IsOperator("("))
            {
                var line = Current.Line;
                node = new CallExpr(node, ParseCallArguments(), line);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("|"))
            {
                node = ParseFilter(node, startInline: false)!;
            }
            else if (Current.IsName("is"))
            {
                node = ParseTest(node);
            }
            else if (Current.IsOperator("("))
            {
                var line = Current.Line;
                node = new CallExpr(node, ParseCallArguments(), line);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(Expr node)
    {
        var token = Next();
        if (token.Value == ".")
        {
            var attribute = Next();
            if (attribute.Kind == TokenKind.Name)
            {
                return new GetAttrExpr(node, attribute.Value, token.Line);
            }

            if (attribute.Kind != TokenKind.Integer)
            {
                throw Fail("expected name or number", attribute);
            }

            return new GetItemExpr(node, new ConstExpr(attribute.Literal, attribute.Line), token.Line);
        }

        var keys = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (keys.Count > 0)
            {
                ExpectOperator(",");
            }

            keys.Add(ParseSubscribed());
        }

        ExpectOperator("]");
        return new GetItemExpr(node, keys.Count == 1 ? keys[0] : new TupleExpr(keys, token.Line), token.Line);
    }

    private Expr ParseSubscribed()
    {
        var line = Current.Line;
        Expr? start = null;
        if (!SkipOperator(":"))
        {
            var node = ParseExpression();
            if (!SkipOperator(":"))
            {
                return node;
            }

            start = node;
        }

        Expr? stop = null;
        if (!Current.IsOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(","))
        {
            stop = ParseExpression();
        }

        Expr? step = null;
        if (SkipOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(","))
        {
            step = ParseExpression();
        }

        return new SliceExpr(start, stop, step, line);
    }

    private CallArguments ParseCallArguments()
    {
        var open = Current;
        ExpectOperator("(");
        var positional = new List<Expr>();
        var keywords = new List<(string, Expr)>();
        Expr? star = null;
        Expr? starStar = null;
        var requireComma = false;
        while (!Current.IsOperator(")"))
        {
            if (requireComma)
            {
                ExpectOperator(",");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }

            if (SkipOperator("*"))
            {
                Ensure(star is null && starStar is null);
                star = ParseExpression();
            }
            else if (SkipOperator("**"))
            {
                Ensure(starStar is null);
                starStar = ParseExpression();
            }
            else if (Current.Kind == TokenKind.Name && Look.IsOperator("="))
            {
                Ensure(starStar is null);
                var name = Next().Value;
                Next();
                keywords.Add((name, ParseExpression()));
            }
            else
            {
                Ensure(star is null && starStar is null && keywords.Count == 0);
                positional.Add(ParseExpression());
            }

            requireComma = true;
        }

        ExpectOperator(")");
        return new CallArguments(positional, keywords, star, starStar);

        void Ensure(bool valid)
        {
            if (!valid)
            {
                throw Fail("invalid syntax for function call expression", open);
            }
        }
    }

    private FilterExpr? ParseFilter(Expr? node, bool startInline)
    {
        FilterExpr? result = null;
        while (Current.IsOperator("|") || startInline)
        {
            if (!startInline)
            {
                Next();
            }

            var token = Expect(TokenKind.Name);
            var name = token.Value;
            while (SkipOperator("."))
            {
                name += "." + Expect(TokenKind.Name).Value;
            }

            if (!JinjaFilters.Exists(name))
            {
                throw Fail($"No filter named '{name}'.", token);
            }

            var arguments = Current.IsOperator("(") ? ParseCallArguments() : CallArguments.None;
            result = new FilterExpr(node, name, arguments, token.Line);
            node = result;
            startInline = false;
        }

        return result;
    }

    private Expr ParseTest(Expr node)
    {
        var isToken = Next();
        var negated = SkipName("not");
        var nameToken = Expect(TokenKind.Name);
        var name = nameToken.Value;
        while (SkipOperator("."))
        {
            name += "." + Expect(TokenKind.Name).Value;
        }

        if (!JinjaTests.Exists(name))
        {
            throw Fail($"No test named '{name}'.", nameToken);
        }

        CallArguments arguments;
        if (Current.IsOperator("("))
        {
            arguments = ParseCallArguments();
        }
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                  || Current.IsOperator("(") || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !Current.IsName("else") && !Current.IsName("or") && !Current.IsName("and"))
        {
            if (Current.IsName("is"))
            {
                throw Fail("You cannot chain multiple tests with is", Current);
            }

            var argument = ParsePostfix(ParsePrimary());
            arguments = new CallArguments([argument], [], null, null);
        }
        else
        {
            arguments = CallArguments.None;
        }

        Expr test = new TestExpr(node, name, arguments, isToken.Line);
        return negated ? new UnaryExpr(UnaryOp.Not, test, isToken.Line) : test;
    }
}
