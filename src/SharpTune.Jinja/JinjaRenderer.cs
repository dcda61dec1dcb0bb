using System.Text;

namespace SharpTune.Jinja;

/// <summary>
/// Walks the syntax tree and writes the output, with jinja2's scoping (each for-loop iteration, macro call and
/// with-block gets its own scope; if-blocks do not) and the attribute rules of Hugging Face's
/// ImmutableSandboxedEnvironment.
/// </summary>
internal sealed class JinjaRenderer
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    /// <summary>Nested calls, blocks and expressions while rendering (a self-recursive macro stops here, as
    /// Python's recursion limit stops jinja2).</summary>
    public const int MaxDepth = 500;

    /// <summary>The most characters a rendering may produce; a chat prompt is far smaller.</summary>
    public const int MaxOutput = 16 * 1024 * 1024;

    /// <summary>
    /// The most work one rendering may do, in units of about a byte: <see cref="StepCost"/> per expression and loop
    /// iteration, plus the size of every value an operation takes or makes (2 per character, 8 per list item, 16 per
    /// dict entry). Values are only made by operations and none makes more than <see cref="Py.MaxRepeat"/> at once,
    /// so this bounds the memory of a rendering as well as its time: nested loops, a huge string concatenated in a
    /// loop, a membership test on a long list repeated 100,000 times all stop here, after about a second. A chat
    /// prompt of a thousand messages uses a few percent.
    /// </summary>
    public const long MaxWork = 256L * 1024 * 1024;

    /// <summary>The work of one expression or loop iteration (about what it allocates: a scope, a boxed value).</summary>
    private const int StepCost = 64;

    private StringBuilder _output = new();
    private int _line = 1;
    private int _depth;
    private long _work;

    private JinjaRenderer()
    {
    }

    public static string Render(IReadOnlyList<Node> template, IReadOnlyDictionary<string, object?> variables)
    {
        var renderer = new JinjaRenderer();
        var globals = JinjaBuiltins.CreateGlobals();
        var context = new Scope(globals);
        foreach (var (name, value) in variables)
        {
            context.Set(name, JinjaConvert.FromClr(value, name));
        }

        try
        {
            renderer.Execute(template, new Scope(context));
        }
        catch (JinjaRuntimeException e)
        {
            throw JinjaErrors.Runtime(e.Message, renderer._line);
        }

        return renderer._output.ToString();
    }

    private Flow Execute(IReadOnlyList<Node> body, Scope scope)
    {
        Enter();
        try
        {
            return ExecuteBody(body, scope);
        }
        finally
        {
            _depth--;
        }
    }

    private void Enter()
    {
        if (++_depth > MaxDepth)
        {
            _depth = 0;   // the error unwinds the whole render
            throw new JinjaRuntimeException($"recursion deeper than {MaxDepth} levels (a macro calling itself without end?)");
        }
    }

    /// <summary>Counts work against <see cref="MaxWork"/>.</summary>
    private void Spend(long units)
    {
        _work += units;
        if (_work > MaxWork)
        {
            throw new JinjaRuntimeException($"the template does more work than a chat prompt needs (over {MaxWork / (1024 * 1024)} M steps and bytes of values: an endless loop or a huge value?)");
        }
    }

    /// <summary>The work of taking or making a value: about its size in bytes.</summary>
    private static long Footprint(object? value) => value switch
    {
        string s => 2L * s.Length,
        Markup m => 2L * m.Text.Length,
        List<object?> list => 8L * list.Count,
        object?[] tuple => 8L * tuple.Length,
        PyDict dict => 16L * dict.Count,
        _ => 0,
    };

    private void Write(string text)
    {
        if (_output.Length + (long)text.Length > MaxOutput)
        {
            throw new JinjaRuntimeException($"the output would exceed {MaxOutput / (1024 * 1024)} MB");
        }

        _output.Append(text);
    }

    private Flow ExecuteBody(IReadOnlyList<Node> body, Scope scope)
    {
        foreach (var node in body)
        {
            _line = node.Line;
            var flow = ExecuteNode(node, scope);
            if (flow != Flow.Normal)
            {
                return flow;
            }
        }

        return Flow.Normal;
    }

    private Flow ExecuteNode(Node node, Scope scope)
    {
        switch (node)
        {
            case TextNode text:
                Write(text.Text);
                return Flow.Normal;
            case OutputNode print:
                Write(Py.Str(Evaluate(print.Value, scope)));
                return Flow.Normal;
            case IfNode conditional:
                foreach (var (test, branch) in conditional.Branches)
                {
                    if (Py.Truthy(Evaluate(test, scope)))
                    {
                        return Execute(branch, scope);
                    }
                }

                return Execute(conditional.Else, scope);
            case ForNode loop:
                return ExecuteFor(loop, scope);
            case SetNode set:
                Assign(set.Target, Evaluate(set.Value, scope), scope);
                return Flow.Normal;
            case SetBlockNode setBlock:
                object? captured = Capture(setBlock.Body, scope);
                if (setBlock.Filter is not null)
                {
                    captured = ApplyFilterChain(setBlock.Filter, captured, scope);
                }

                Assign(setBlock.Target, captured, scope);
                return Flow.Normal;
            case MacroNode macro:
                scope.Set(macro.Name, new Macro(macro, scope));
                return Flow.Normal;
            case FilterBlockNode filterBlock:
                Write(Py.Str(ApplyFilterChain(filterBlock.Filter, Capture(filterBlock.Body, scope), scope)));
                return Flow.Normal;
            case WithNode with:
                var values = with.Assignments.Select(a => Evaluate(a.Value, scope)).ToList();
                var inner = new Scope(scope);
                for (var i = 0; i < values.Count; i++)
                {
                    Assign(with.Assignments[i].Target, values[i], inner);
                }

                return Execute(with.Body, inner);
            case GenerationNode generation:
                return Execute(generation.Body, scope);
            case BreakNode:
                return Flow.Break;
            case ContinueNode:
                return Flow.Continue;
            default:
                throw new InvalidOperationException($"unknown node {node.GetType().Name}");
        }
    }

    private Flow ExecuteFor(ForNode loop, Scope scope)
    {
        var iterable = Evaluate(loop.Iterable, scope);
        Func<object?, bool>? accept = null;
        if (loop.Filter is not null)
        {
            accept = item =>
            {
                var filterScope = new Scope(scope);
                Assign(loop.Target, item, filterScope);
                return Py.Truthy(Evaluate(loop.Filter, filterScope));
            };
        }

        var context = new LoopContext(Py.Iterate(iterable).GetEnumerator(), accept);
        var iterated = false;
        while (context.MoveNext())
        {
            Spend(StepCost);
            iterated = true;
            var iteration = new Scope(scope);
            Assign(loop.Target, context.Current, iteration);
            iteration.Set("loop", context);
            if (Execute(loop.Body, iteration) == Flow.Break)
            {
                break;
            }
        }

        return iterated ? Flow.Normal : Execute(loop.Else, new Scope(scope));
    }

    private string Capture(IReadOnlyList<Node> body, Scope scope)
    {
        var saved = _output;
        _output = new StringBuilder();
        try
        {
            Execute(body, scope);
            var text = _output.ToString();
            Spend(Footprint(text));
            return text;
        }
        finally
        {
            _output = saved;
        }
    }

    private object? ApplyFilterChain(FilterExpr filter, object? value, Scope scope)
    {
        if (filter.Value is FilterExpr previous)
        {
            value = ApplyFilterChain(previous, value, scope);
        }

        var (positional, keywords) = EvaluateArguments(filter.Arguments, scope);
        Spend(Footprint(value));
        var result = JinjaFilters.Apply(this, filter.Name, value, new Args(filter.Name, positional, keywords));
        Spend(Footprint(result));
        return result;
    }

    private void Assign(Expr target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameExpr name:
                scope.Set(name.Name, value);
                break;
            case TupleExpr tuple:
                var items = Py.Iterate(value).ToList();
                if (items.Count != tuple.Items.Count)
                {
                    throw new JinjaRuntimeException(items.Count > tuple.Items.Count
                        ? $"too many values to unpack (expected {tuple.Items.Count})"
                        : $"not enough values to unpack (expected {tuple.Items.Count}, got {items.Count})");
                }

                for (var i = 0; i < items.Count; i++)
                {
                    Assign(tuple.Items[i], items[i], scope);
                }

                break;
            case NamespaceRefExpr reference:
                if (!scope.TryLookup(reference.Name, out var ns) || ns is not JinjaNamespace jinjaNamespace)
                {
                    throw new JinjaRuntimeException("cannot assign attribute on non-namespace object");
                }

                jinjaNamespace.Attributes.Set(reference.Attribute, value);
                break;
            default:
                throw new JinjaRuntimeException("invalid assignment target");
        }
    }

    public object? Evaluate(Expr expr, Scope scope)
    {
        Enter();
        try
        {
            Spend(StepCost);
            var value = EvaluateExpr(expr, scope);
            if (expr is not (ConstExpr or NameExpr or NamespaceRefExpr or GetAttrExpr or GetItemExpr { Key: not SliceExpr }))
            {
                Spend(Footprint(value));   // a value made (a lookup only refers to one)
            }

            return value;
        }
        finally
        {
            _depth--;
        }
    }

    private object? EvaluateExpr(Expr expr, Scope scope)
    {
        _line = expr.Line;
        switch (expr)
        {
            case ConstExpr constant:
                return constant.Value;
            case NameExpr name:
                return scope.TryLookup(name.Name, out var value) ? value : Undefined.ForName(name.Name);
            case ListExpr list:
                return list.Items.Select(item => Evaluate(item, scope)).ToList();
            case TupleExpr tuple:
                return tuple.Items.Select(item => Evaluate(item, scope)).ToArray();
            case DictExpr dict:
                var result = new PyDict();
                foreach (var (key, item) in dict.Pairs)
                {
                    result.Set(Evaluate(key, scope), Evaluate(item, scope));
                }

                return result;
            case GetAttrExpr attribute:
                return GetAttribute(Evaluate(attribute.Target, scope), attribute.Name);
            case GetItemExpr item when item.Key is SliceExpr slice:
                return Slice(
                    Evaluate(item.Target, scope),
                    slice.Start is null ? null : Evaluate(slice.Start, scope),
                    slice.Stop is null ? null : Evaluate(slice.Stop, scope),
                    slice.Step is null ? null : Evaluate(slice.Step, scope));
            case GetItemExpr item:
                return GetItem(Evaluate(item.Target, scope), Evaluate(item.Key, scope));
            case CallExpr call:
                var callee = Evaluate(call.Callee, scope);
                var (positional, keywords) = EvaluateArguments(call.Arguments, scope);
                _line = call.Line;
                return Call(callee, positional, keywords);
            case FilterExpr filter:
                var input = filter.Value is null ? null : Evaluate(filter.Value, scope);
                Spend(Footprint(input));
                var (filterPositional, filterKeywords) = EvaluateArguments(filter.Arguments, scope);
                _line = filter.Line;
                return JinjaFilters.Apply(this, filter.Name, input, new Args(filter.Name, filterPositional, filterKeywords));
            case TestExpr test:
                var subject = Evaluate(test.Value, scope);
                Spend(Footprint(subject));
                var (testPositional, testKeywords) = EvaluateArguments(test.Arguments, scope);
                _line = test.Line;
                return JinjaTests.Apply(this, test.Name, subject, new Args(test.Name, testPositional, testKeywords));
            case UnaryExpr unary:
                var operand = Evaluate(unary.Operand, scope);
                return unary.Op switch
                {
                    UnaryOp.Not => !Py.Truthy(operand),
                    UnaryOp.Negate => Py.Negate(operand),
                    _ => Py.Plus(operand),
                };
            case BinaryExpr binary:
                return EvaluateBinary(binary, scope);
            case ConcatExpr concat:
                var sb = new StringBuilder();
                foreach (var part in concat.Parts)
                {
                    var text = Py.Str(Evaluate(part, scope));
                    Py.Size((long)sb.Length + text.Length, "a string of length");
                    sb.Append(text);
                }

                return sb.ToString();
            case CompareExpr compare:
                return EvaluateCompare(compare, scope);
            case ConditionalExpr conditional:
                if (Py.Truthy(Evaluate(conditional.Test, scope)))
                {
                    return Evaluate(conditional.Then, scope);
                }

                return conditional.Otherwise is null
                    ? new Undefined($"the inline if-expression on line {conditional.Line} evaluated to false and no else section was defined.")
                    : Evaluate(conditional.Otherwise, scope);
            default:
                throw new JinjaRuntimeException($"cannot evaluate {expr.GetType().Name} here");
        }
    }

    private object? EvaluateBinary(BinaryExpr binary, Scope scope)
    {
        var left = Evaluate(binary.Left, scope);
        switch (binary.Op)
        {
            case BinaryOp.And:
                return Py.Truthy(left) ? Evaluate(binary.Right, scope) : left;
            case BinaryOp.Or:
                return Py.Truthy(left) ? left : Evaluate(binary.Right, scope);
        }

        var right = Evaluate(binary.Right, scope);
        Spend(Footprint(left) + Footprint(right));
        _line = binary.Line;
        return binary.Op switch
        {
            BinaryOp.Add => Py.Add(left, right),
            BinaryOp.Sub => Py.Subtract(left, right),
            BinaryOp.Mul => Py.Multiply(left, right),
            BinaryOp.Div => Py.Divide(left, right),
            BinaryOp.FloorDiv => Py.FloorDivide(left, right),
            BinaryOp.Mod => Py.Modulo(left, right),
            _ => Py.Power(left, right),
        };
    }

    private bool EvaluateCompare(CompareExpr compare, Scope scope)
    {
        var left = Evaluate(compare.First, scope);
        foreach (var (op, operand) in compare.Rest)
        {
            var right = Evaluate(operand, scope);
            Spend(Footprint(left) + Footprint(right));
            _line = compare.Line;
            var holds = op switch
            {
                CompareOp.Eq => Py.Equal(left, right),
                CompareOp.Ne => !Py.Equal(left, right),
                CompareOp.Lt => Py.Compare(left, right, "<") < 0,
                CompareOp.LtEq => Py.Compare(left, right, "<=") <= 0,
                CompareOp.Gt => Py.Compare(left, right, ">") > 0,
                CompareOp.GtEq => Py.Compare(left, right, ">=") >= 0,
                CompareOp.In => Py.Contains(right, left),
                _ => !Py.Contains(right, left),
            };
            if (!holds)
            {
                return false;
            }

            left = right;
        }

        return true;
    }

    private (List<object?> Positional, Dictionary<string, object?> Keywords) EvaluateArguments(CallArguments arguments, Scope scope)
    {
        var positional = arguments.Positional.Select(a => Evaluate(a, scope)).ToList();
        positional.ForEach(value => Spend(Footprint(value)));
        if (arguments.Star is not null)
        {
            positional.AddRange(Py.Iterate(Evaluate(arguments.Star, scope)));
        }

        var keywords = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in arguments.Keywords)
        {
            keywords[name] = Evaluate(value, scope);
            Spend(Footprint(keywords[name]));
        }

        if (arguments.StarStar is not null)
        {
            if (Evaluate(arguments.StarStar, scope) is not PyDict extra)
            {
                throw new JinjaRuntimeException("argument after ** must be a mapping");
            }

            foreach (var (key, value) in extra)
            {
                keywords[key as string ?? throw new JinjaRuntimeException("keywords must be strings")] = value;
            }
        }

        return (positional, keywords);
    }

    public object? Call(object? callee, List<object?> positional, Dictionary<string, object?> keywords) => callee switch
    {
        Undefined undefined => throw undefined.Error(),
        BoundMethod method => JinjaMethods.Call(method, new Args(method.Name, positional, keywords)),
        BuiltinFunction function => function.Invoke(positional, keywords),
        Macro macro => CallMacro(macro, positional, keywords),
        _ => throw new JinjaRuntimeException($"'{Py.TypeName(callee)}' object is not callable"),
    };

    private string CallMacro(Macro macro, List<object?> positional, Dictionary<string, object?> keywords)
    {
        var node = macro.Node;
        var scope = new Scope(macro.Closure);
        var firstDefault = node.Parameters.Count - node.Defaults.Count;
        for (var i = 0; i < node.Parameters.Count; i++)
        {
            var name = node.Parameters[i];
            if (i < positional.Count)
            {
                if (keywords.ContainsKey(name))
                {
                    throw new JinjaRuntimeException($"macro '{node.Name}' got multiple values for argument '{name}'");
                }

                scope.Set(name, positional[i]);
            }
            else if (keywords.Remove(name, out var value))
            {
                scope.Set(name, value);
            }
            else
            {
                scope.Set(name, i >= firstDefault
                    ? Evaluate(node.Defaults[i - firstDefault], scope)
                    : new Undefined($"parameter {PyRepr.String(name)} was not provided"));
            }
        }

        scope.Set("varargs", positional.Skip(node.Parameters.Count).ToArray());
        var extraKeywords = new PyDict();
        foreach (var (key, value) in keywords)
        {
            extraKeywords.Set(key, value);
        }

        scope.Set("kwargs", extraKeywords);
        var savedLine = _line;
        var result = Capture(node.Body, scope);
        _line = savedLine;
        return result;
    }

    /// <summary>
    /// <c>obj.name</c>: a Python attribute first (a str/dict/list method, a namespace or loop attribute), then the
    /// item <c>obj["name"]</c>, else undefined. Only undefined itself raises.
    /// </summary>
    public static object? GetAttribute(object? target, string name)
    {
        switch (target)
        {
            case Undefined undefined:
                throw undefined.Error();
            case JinjaNamespace ns:
                return ns.Attributes.TryGet(name, out var attribute) ? attribute : Undefined.ForAttribute(target, name);
            case LoopContext loop:
                return LoopContext.HasAttribute(name) ? loop.Attribute(name) : Undefined.ForAttribute(target, name);
        }

        if (target is not null && JinjaMethods.Lookup(target, name) is { } method)
        {
            return method;
        }

        return target is PyDict dict && dict.TryGet(name, out var value) ? value : Undefined.ForAttribute(target, name);
    }

    /// <summary><c>obj[key]</c>: the item first; for a string key that is missing, the attribute; else undefined.</summary>
    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case Undefined undefined:
                throw undefined.Error();
            case string text when Py.IntegerOrNull(key) is long index:
                return TryElementAt(PyString.CodePoints(text), index, out var character) ? character : Undefined.ForItem(target, key);
            case Markup markup when Py.IntegerOrNull(key) is long index:
                return TryElementAt(PyString.CodePoints(markup.Text), index, out var markupCharacter)
                    ? new Markup((string)markupCharacter!)
                    : Undefined.ForItem(target, key);
            case List<object?> list when Py.IntegerOrNull(key) is long index:
                return TryElementAt(list, index, out var element) ? element : Undefined.ForItem(target, key);
            case object?[] tuple when Py.IntegerOrNull(key) is long index:
                return TryElementAt(tuple, index, out var member) ? member : Undefined.ForItem(target, key);
            case PyDict dict when key is not (List<object?> or PyDict or PyView):
                if (dict.TryGet(key, out var value))
                {
                    return value;
                }

                break;
        }

        return key is string name && target is not null ? GetAttribute(target, name) : Undefined.ForItem(target, key);
    }

    private static bool TryElementAt(IReadOnlyList<object?> items, long index, out object? value)
    {
        var i = index < 0 ? index + items.Count : index;
        value = i >= 0 && i < items.Count ? items[(int)i] : null;
        return i >= 0 && i < items.Count;
    }

    private static object? Slice(object? target, object? start, object? stop, object? step)
    {
        var (from, to, by) = (Py.SliceBound(start), Py.SliceBound(stop), Py.SliceBound(step));
        return target switch
        {
            Undefined undefined => throw undefined.Error(),
            string text => PyString.Slice(text, from, to, by),
            Markup markup => new Markup(PyString.Slice(markup.Text, from, to, by)),
            List<object?> list => Py.SliceRange(list.Count, from, to, by).Select(i => list[i]).ToList(),
            object?[] tuple => Py.SliceRange(tuple.Length, from, to, by).Select(i => tuple[i]).ToArray(),
            _ => throw new JinjaRuntimeException($"'{Py.TypeName(target)}' object is not subscriptable"),
        };
    }
}
