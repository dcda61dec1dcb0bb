namespace SharpTune.Jinja;

// Statements. Every node keeps the template line it starts on, for error messages.

internal abstract record Node(int Line);

internal sealed record TextNode(string Text, int Line) : Node(Line);

internal sealed record OutputNode(Expr Value, int Line) : Node(Line);

internal sealed record IfNode(IReadOnlyList<(Expr Test, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node> Else, int Line)
    : Node(Line);

internal sealed record ForNode(Expr Target, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node> Else, int Line)
    : Node(Line);

/// <summary>"{% set target = value %}"; the target is a name, a tuple of names or a namespace attribute.</summary>
internal sealed record SetNode(Expr Target, Expr Value, int Line) : Node(Line);

/// <summary>"{% set name %}body{% endset %}", optionally filtered: "{% set name | upper %}".</summary>
internal sealed record SetBlockNode(Expr Target, FilterExpr? Filter, IReadOnlyList<Node> Body, int Line) : Node(Line);

internal sealed record MacroNode(string Name, IReadOnlyList<string> Parameters, IReadOnlyList<Expr> Defaults, IReadOnlyList<Node> Body, int Line)
    : Node(Line);

internal sealed record FilterBlockNode(FilterExpr Filter, IReadOnlyList<Node> Body, int Line) : Node(Line);

internal sealed record WithNode(IReadOnlyList<(Expr Target, Expr Value)> Assignments, IReadOnlyList<Node> Body, int Line) : Node(Line);

internal sealed record BreakNode(int Line) : Node(Line);

internal sealed record ContinueNode(int Line) : Node(Line);

/// <summary>Hugging Face's "{% generation %}" block (assistant-token tracking); it renders its body unchanged.</summary>
internal sealed record GenerationNode(IReadOnlyList<Node> Body, int Line) : Node(Line);

// Expressions.

internal abstract record Expr(int Line);

internal sealed record ConstExpr(object? Value, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

/// <summary>"ns.attr" as an assignment target.</summary>
internal sealed record NamespaceRefExpr(string Name, string Attribute, int Line) : Expr(Line);

internal sealed record ListExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record TupleExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Pairs, int Line) : Expr(Line);

internal sealed record GetAttrExpr(Expr Target, string Name, int Line) : Expr(Line);

internal sealed record GetItemExpr(Expr Target, Expr Key, int Line) : Expr(Line);

internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal sealed record CallArguments(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Keywords, Expr? Star, Expr? StarStar)
{
    public static readonly CallArguments None = new([], [], null, null);
}

internal sealed record CallExpr(Expr Callee, CallArguments Arguments, int Line) : Expr(Line);

/// <summary>"value | name(args)"; <see cref="Value"/> is null for "{% filter %}" blocks and "{% set x | f %}".</summary>
internal sealed record FilterExpr(Expr? Value, string Name, CallArguments Arguments, int Line) : Expr(Line);

internal sealed record TestExpr(Expr Value, string Name, CallArguments Arguments, int Line) : Expr(Line);

internal enum UnaryOp
{
    Not,
    Negate,
    Plus,
}

internal sealed record UnaryExpr(UnaryOp Op, Expr Operand, int Line) : Expr(Line);

internal enum BinaryOp
{
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    And,
    Or,
}

internal sealed record BinaryExpr(BinaryOp Op, Expr Left, Expr Right, int Line) : Expr(Line);

/// <summary>"a ~ b ~ c": string concatenation of every operand's str().</summary>
internal sealed record ConcatExpr(IReadOnlyList<Expr> Parts, int Line) : Expr(Line);

internal enum CompareOp
{
    Eq,
    Ne,
    Lt,
    LtEq,
    Gt,
    GtEq,
    In,
    NotIn,
}

/// <summary>A comparison chain such as "a &lt; b &lt;= c".</summary>
internal sealed record CompareExpr(Expr First, IReadOnlyList<(CompareOp Op, Expr Operand)> Rest, int Line) : Expr(Line);

/// <summary>"then if test else otherwise"; a missing else yields undefined.</summary>
internal sealed record ConditionalExpr(Expr Test, Expr Then, Expr? Otherwise, int Line) : Expr(Line);
