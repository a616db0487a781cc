using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>A variable scope: the template's top level, a for-loop iteration, a macro call.</summary>
internal sealed class JinjaScope(JinjaScope? parent)
{
    private readonly Dictionary<string, object?> _variables = new(StringComparer.Ordinal);

    public JinjaScope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope._variables.TryGetValue(name, out value))
            {
                return true;
            }
        }
        value = null;
        return false;
    }

    public void Set(string name, object? value) => _variables[name] = value;
}

/// <summary>Walks the syntax tree: statements write to the output, expressions evaluate to engine values.</summary>
internal sealed class JinjaRenderer
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private readonly TimeProvider _clock;
    private long _iterations;
    private int _depth;

    public JinjaRenderer(TimeProvider clock)
    {
        _clock = clock;
    }

    public string Render(IReadOnlyList<Node> body, IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new JinjaScope(null);
        JinjaGlobals.Install(globals, _clock);
        var root = new JinjaScope(globals);
        foreach (var (name, value) in variables)
        {
            root.Set(name, JinjaValue.FromDotNet(value));
        }
        var output = new StringBuilder();
        RenderBody(body, root, output);
        return output.ToString();
    }

    private Flow RenderBody(IReadOnlyList<Node> body, JinjaScope scope, StringBuilder output)
    {
        foreach (var node in body)
        {
            var flow = RenderNode(node, scope, output);
            if (flow != Flow.Normal)
            {
                return flow;
            }
            if (output.Length > JinjaLimits.MaxOutputChars)
            {
                throw new JinjaException($"the rendered template exceeds {JinjaLimits.MaxOutputChars} characters");
            }
        }
        return Flow.Normal;
    }

    private Flow RenderNode(Node node, JinjaScope scope, StringBuilder output)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        try
        {
            switch (node)
            {
                case OutputNode o:
                    output.Append(o.Text);
                    return Flow.Normal;
                case PrintNode p:
                    output.Append(PythonFormat.Str(Evaluate(p.Value, scope)));
                    return Flow.Normal;
                case IfNode i:
                    foreach (var (test, branch) in i.Branches)
                    {
                        if (PythonOps.Truthy(Evaluate(test, scope)))
                        {
                            return RenderBody(branch, scope, output);
                        }
                    }
                    return i.Else is null ? Flow.Normal : RenderBody(i.Else, scope, output);
                case ForNode f:
                    RenderFor(f, scope, output);
                    return Flow.Normal;
                case SetNode s:
                    Assign(s.Target, Evaluate(s.Value, scope), scope);
                    return Flow.Normal;
                case SetBlockNode sb:
                    Assign(sb.Target, RenderFiltered(sb.Body, sb.Filters, scope), scope);
                    return Flow.Normal;
                case MacroNode m:
                    scope.Set(m.Name, MakeMacro(m.Name, m.Parameters, m.Defaults, m.Body, m.CatchVarargs, m.CatchKwargs, scope));
                    return Flow.Normal;
                case CallBlockNode c:
                {
                    var caller = MakeMacro("caller", c.Parameters, c.Defaults, c.Body, c.CatchVarargs, c.CatchKwargs, scope);
                    var callee = Evaluate(c.Call.Callee, scope);
                    var args = EvaluateArguments(c.Call.Arguments, scope, "macro");
                    var keywords = new Dictionary<string, object?>(args.Keyword) { ["caller"] = caller };
                    output.Append(PythonFormat.Str(Call(callee, new JinjaArguments(args.Positional, keywords, "macro"))));
                    return Flow.Normal;
                }
                case FilterBlockNode fb:
                    output.Append(PythonFormat.Str(RenderFiltered(fb.Body, fb.Filters, scope)));
                    return Flow.Normal;
                case BreakNode:
                    return Flow.Break;
                case ContinueNode:
                    return Flow.Continue;
                case ScopeNode sn:
                    // transformers' {% generation %} is a call block: its body is a macro with its own scope.
                    return RenderBody(sn.Body, new JinjaScope(scope), output);
                default:
                    throw new JinjaException($"cannot render {node.GetType().Name}");
            }
        }
        catch (JinjaException e) when (e.Line is null && e is not JinjaRaisedException)
        {
            throw new JinjaException(e.Message, node.Line);
        }
    }

    private void RenderFor(ForNode f, JinjaScope scope, StringBuilder output)
    {
        var iterable = Evaluate(f.Iterable, scope);
        RenderLoop(f, iterable, scope, output, depth: 1);
    }

    private void RenderLoop(ForNode f, object? iterable, JinjaScope scope, StringBuilder output, int depth)
    {
        IReadOnlyList<object?> items = PythonOps.Iterate(iterable);
        if (f.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                var filterScope = new JinjaScope(scope);
                Assign(f.Target, item, filterScope);
                if (PythonOps.Truthy(Evaluate(f.Filter, filterScope)))
                {
                    kept.Add(item);
                }
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            if (f.Else is not null)
            {
                RenderBody(f.Else, new JinjaScope(scope), output);
            }
            return;
        }
        var loop = new LoopObject(items, depth);
        for (var i = 0; i < items.Count; i++)
        {
            if (++_iterations > JinjaLimits.MaxLoopIterations)
            {
                throw new JinjaException($"the template exceeds {JinjaLimits.MaxLoopIterations} loop iterations");
            }
            loop.Index0 = i;
            var iterationScope = new JinjaScope(scope);
            Assign(f.Target, items[i], iterationScope);
            iterationScope.Set("loop", f.Recursive ? new RecursiveLoop(loop, this, f, scope, depth) : loop);
            if (RenderBody(f.Body, iterationScope, output) == Flow.Break)
            {
                break;
            }
        }
    }

    /// <summary>The loop variable of a recursive for: <c>loop(children)</c> renders the body for them.</summary>
    internal sealed class RecursiveLoop(LoopObject loop, JinjaRenderer renderer, ForNode node, JinjaScope scope, int depth)
    {
        public LoopObject Loop { get; } = loop;

        public string Recurse(object? items)
        {
            var output = new StringBuilder();
            renderer.RenderLoop(node, items, scope, output, depth + 1);
            return output.ToString();
        }
    }

    private void Assign(Expr target, object? value, JinjaScope scope)
    {
        switch (target)
        {
            case NameExpr n:
                scope.Set(n.Name, value);
                break;
            case TupleExpr t:
            {
                var items = PythonOps.Iterate(value);
                if (items.Count != t.Items.Count)
                {
                    throw new JinjaException(items.Count > t.Items.Count
                        ? $"too many values to unpack (expected {t.Items.Count})"
                        : $"not enough values to unpack (expected {t.Items.Count}, got {items.Count})");
                }
                for (var i = 0; i < items.Count; i++)
                {
                    Assign(t.Items[i], items[i], scope);
                }
                break;
            }
            case GetAttrExpr { Target: NameExpr ns } a:
                if (!scope.TryGet(ns.Name, out var obj) || obj is not JinjaNamespace nsObj)
                {
                    throw new JinjaException("cannot assign attribute on non-namespace object");
                }
                nsObj.Attributes[a.Attribute] = value;
                break;
            default:
                throw new JinjaException("invalid assignment target");
        }
    }

    private JinjaCallable MakeMacro(string name, IReadOnlyList<string> parameters, IReadOnlyList<Expr?> defaults, IReadOnlyList<Node> body, bool catchVarargs, bool catchKwargs, JinjaScope definitionScope) =>
        new(name, (args, kwargs) =>
        {
            if (args.Count > parameters.Count && !catchVarargs)
            {
                throw new JinjaException($"macro '{name}' takes not more than {parameters.Count} argument(s)");
            }
            if (++_depth > JinjaLimits.MaxCallDepth)
            {
                throw new JinjaException("maximum recursion depth exceeded in macro calls");
            }
            try
            {
                var scope = new JinjaScope(definitionScope);
                var remaining = new Dictionary<string, object?>(kwargs);
                for (var i = 0; i < parameters.Count; i++)
                {
                    object? value;
                    if (i < args.Count)
                    {
                        value = args[i];
                    }
                    else if (remaining.Remove(parameters[i], out var kw))
                    {
                        value = kw;
                    }
                    else if (defaults[i] is { } d)
                    {
                        value = Evaluate(d, scope);
                    }
                    else
                    {
                        value = new JinjaUndefined($"parameter '{parameters[i]}' was not provided");
                    }
                    scope.Set(parameters[i], value);
                }
                if (remaining.Remove("caller", out var caller))
                {
                    scope.Set("caller", caller);
                }
                if (remaining.Count > 0 && !catchKwargs)
                {
                    throw new JinjaException($"macro '{name}' takes no keyword argument '{remaining.Keys.First()}'");
                }
                scope.Set("varargs", new JinjaTuple(args.Skip(parameters.Count).ToArray()));
                var kwargsDict = new JinjaDict();
                foreach (var (k, v) in remaining)
                {
                    kwargsDict[k] = v;
                }
                scope.Set("kwargs", kwargsDict);
                var output = new StringBuilder();
                RenderBody(body, scope, output);
                return output.ToString();
            }
            finally
            {
                _depth--;
            }
        });

    // ---- expressions ----

    public object? Evaluate(Expr expr, JinjaScope scope)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (expr)
        {
            case ConstExpr c:
                return c.Value;
            case NameExpr n:
                return scope.TryGet(n.Name, out var value) ? value : JinjaUndefined.ForName(n.Name);
            case ListExpr l:
            {
                var list = new List<object?>(l.Items.Count);
                foreach (var item in l.Items)
                {
                    list.Add(Evaluate(item, scope));
                }
                return list;
            }
            case TupleExpr t:
                return new JinjaTuple(t.Items.Select(i => Evaluate(i, scope)).ToArray());
            case DictExpr d:
            {
                var dict = new JinjaDict();
                foreach (var (k, v) in d.Pairs)
                {
                    dict[PythonOps.ToKey(Evaluate(k, scope))] = Evaluate(v, scope);
                }
                return dict;
            }
            case GetAttrExpr a:
                return JinjaAccess.GetAttribute(Evaluate(a.Target, scope), a.Attribute);
            case GetItemExpr g:
            {
                var target = Evaluate(g.Target, scope);
                if (g.Index is SliceExpr s)
                {
                    return JinjaAccess.Slice(target, Optional(s.Start, scope), Optional(s.Stop, scope), Optional(s.Step, scope));
                }
                return JinjaAccess.GetItem(target, Evaluate(g.Index, scope));
            }
            case SliceExpr:
                throw new JinjaException("a slice is only valid inside []");
            case CallExpr call:
            {
                var callee = Evaluate(call.Callee, scope);
                return Call(callee, EvaluateArguments(call.Arguments, scope, CalleeName(call.Callee)));
            }
            case FilterExpr f:
                return ApplyFilter(f, f.Target is null ? null : Evaluate(f.Target, scope), scope);
            case TestExpr t:
            {
                var result = JinjaTests.Apply(t.Name, Evaluate(t.Target, scope), EvaluateArguments(t.Arguments, scope, t.Name), this);
                return t.Negated ? !result : result;
            }
            case UnaryExpr u:
            {
                var operand = Evaluate(u.Operand, scope);
                return u.Operator switch
                {
                    "not" => !PythonOps.Truthy(operand),
                    "-" => operand switch
                    {
                        long l => l == long.MinValue ? -(System.Numerics.BigInteger)l : (object)(-l),
                        System.Numerics.BigInteger g => PythonOps.Normalize(-g),
                        double d => -d,
                        bool b => (object)(b ? -1L : 0L),
                        JinjaUndefined und => throw und.Fail(),
                        _ => throw new JinjaException($"bad operand type for unary -: '{PythonFormat.TypeName(operand)}'"),
                    },
                    _ => operand switch
                    {
                        long or double or System.Numerics.BigInteger => (object)operand,
                        bool b => b ? 1L : 0L,
                        JinjaUndefined und => throw und.Fail(),
                        _ => throw new JinjaException($"bad operand type for unary +: '{PythonFormat.TypeName(operand)}'"),
                    },
                };
            }
            case BinaryExpr b:
                return EvaluateBinary(b, scope);
            case CompareExpr c:
            {
                var left = Evaluate(c.First, scope);
                foreach (var (op, operandExpr) in c.Rest)
                {
                    var right = Evaluate(operandExpr, scope);
                    var ok = op switch
                    {
                        "==" => PythonOps.PyEquals(left, right),
                        "!=" => !PythonOps.PyEquals(left, right),
                        "in" => PythonOps.Contains(right, left),
                        "not in" => !PythonOps.Contains(right, left),
                        "<" => PythonOps.Compare(left, right, op) == -1,
                        "<=" => PythonOps.Compare(left, right, op) is -1 or 0,
                        ">" => PythonOps.Compare(left, right, op) == 1,
                        _ => PythonOps.Compare(left, right, op) is 1 or 0,
                    };
                    if (!ok)
                    {
                        return false;
                    }
                    left = right;
                }
                return true;
            }
            case CondExpr c:
                if (PythonOps.Truthy(Evaluate(c.Test, scope)))
                {
                    return Evaluate(c.Then, scope);
                }
                return c.Else is null ? new JinjaUndefined("the inline if-expression evaluated to false and no else section was defined.") : Evaluate(c.Else, scope);
            default:
                throw new JinjaException($"cannot evaluate {expr.GetType().Name}");
        }
    }

    private static string CalleeName(Expr callee) => callee switch
    {
        NameExpr n => n.Name,
        GetAttrExpr a => a.Attribute,
        _ => "function",
    };

    private object? Optional(Expr? expr, JinjaScope scope) => expr is null ? null : Evaluate(expr, scope);

    private object? EvaluateBinary(BinaryExpr b, JinjaScope scope)
    {
        var left = Evaluate(b.Left, scope);
        switch (b.Operator)
        {
            case "and":
                return PythonOps.Truthy(left) ? Evaluate(b.Right, scope) : left;
            case "or":
                return PythonOps.Truthy(left) ? left : Evaluate(b.Right, scope);
            case "~":
            {
                var l = PythonFormat.Str(left);
                var r = PythonFormat.Str(Evaluate(b.Right, scope));
                JinjaLimits.CheckSize((long)l.Length + r.Length);
                return string.Concat(l, r);
            }
            case "+" when IsMarkup(b.Left) || IsMarkup(b.Right):
            {
                // Jinja2's safe/escape filters return Markup, and Markup + str escapes the plain string (both ways).
                var right = Evaluate(b.Right, scope);
                if (left is string l && right is string r)
                {
                    return string.Concat(IsMarkup(b.Left) ? l : Escape(l), IsMarkup(b.Right) ? r : Escape(r));
                }
                return PythonOps.Arithmetic("+", left, right);
            }
            default:
                try
                {
                    return PythonOps.Arithmetic(b.Operator, left, Evaluate(b.Right, scope));
                }
                catch (OverflowException)
                {
                    throw new JinjaException("integer overflow (the engine's integers are 64-bit)");
                }
        }
    }

    /// <summary>Whether an expression yields Markup: a safe/escape filter, or a + whose operand does.</summary>
    private static bool IsMarkup(Expr expr) => expr switch
    {
        FilterExpr f => f.Name is "safe" or "e" or "escape" or "forceescape",
        BinaryExpr { Operator: "+" } b => IsMarkup(b.Left) || IsMarkup(b.Right),
        _ => false,
    };

    internal static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");

    public JinjaArguments EvaluateArguments(CallArguments arguments, JinjaScope scope, string callee)
    {
        if (arguments.Positional.Count == 0 && arguments.Keyword.Count == 0 && arguments.DynamicPositional is null && arguments.DynamicKeyword is null)
        {
            return new JinjaArguments([], JinjaArguments.NoKeywords, callee);
        }
        var positional = arguments.Positional.Select(a => Evaluate(a, scope)).ToList();
        var keyword = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, valueExpr) in arguments.Keyword)
        {
            keyword[name] = Evaluate(valueExpr, scope);
        }
        if (arguments.DynamicPositional is not null)
        {
            positional.AddRange(PythonOps.Iterate(Evaluate(arguments.DynamicPositional, scope)));
        }
        if (arguments.DynamicKeyword is not null)
        {
            if (Evaluate(arguments.DynamicKeyword, scope) is not JinjaDict kwargs)
            {
                throw new JinjaException("argument after ** must be a mapping");
            }
            foreach (var (k, v) in kwargs)
            {
                keyword[k as string ?? throw new JinjaException("keywords must be strings")] = v;
            }
        }
        return new JinjaArguments(positional, keyword, callee);
    }

    public object? Call(object? callee, JinjaArguments args) => callee switch
    {
        JinjaCallable c => c.Invoke(args.Positional, args.Keyword),
        RecursiveLoop r => r.Recurse(args.Positional.Count > 0 ? args.Positional[0] : throw new JinjaException("loop() takes exactly one argument")),
        JinjaUndefined u => throw u.Fail(),
        _ => throw new JinjaException($"'{PythonFormat.TypeName(callee)}' object is not callable"),
    };

    /// <summary>A block set's or filter block's body rendered in its own scope (as in Jinja2), then through its filters.</summary>
    private object? RenderFiltered(IReadOnlyList<Node> body, IReadOnlyList<FilterExpr> filters, JinjaScope scope)
    {
        var captured = new StringBuilder();
        RenderBody(body, new JinjaScope(scope), captured);
        object? value = captured.ToString();
        foreach (var filter in filters)
        {
            value = ApplyFilter(filter, value, scope);
        }
        return value;
    }

    private object? ApplyFilter(FilterExpr filter, object? value, JinjaScope scope) =>
        JinjaFilters.Apply(filter.Name, value, EvaluateArguments(filter.Arguments, scope, filter.Name), this);
}
