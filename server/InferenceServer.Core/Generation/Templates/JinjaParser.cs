namespace InferenceServer.Generation.Templates;

/// <summary>Builds the syntax tree from tokens, following Jinja2's grammar and operator precedence.</summary>
internal sealed class JinjaParser
{
    private static readonly HashSet<string> CompareOperators = ["==", "!=", "<", "<=", ">", ">="];

    private readonly List<Token> _tokens;
    private int _index;
    private int _loopDepth; // for bodies being parsed, reset inside macros: break/continue outside a loop do not compile in Jinja2
    private bool _readsVarargs; // whether the macro body being parsed reads varargs / kwargs
    private bool _readsKwargs;

    private JinjaParser(List<Token> tokens)
    {
        _tokens = tokens;
    }

    public static IReadOnlyList<Node> Parse(string source)
    {
        var parser = new JinjaParser(JinjaLexer.Tokenize(source));
        var body = parser.Subparse(null);
        return body;
    }

    private Token Current => _tokens[_index];

    private Token Peek(int offset = 1) => _tokens[Math.Min(_index + offset, _tokens.Count - 1)];

    private Token Next()
    {
        var token = _tokens[_index];
        if (_index < _tokens.Count - 1)
        {
            _index++;
        }
        return token;
    }

    private JinjaException Fail(string message, Token? at = null) => new(message, (at ?? Current).Line);

    private Token Expect(TokenKind kind, string? value = null)
    {
        var token = Current;
        if (token.Kind != kind || (value is not null && token.Value != value))
        {
            var expected = value is not null ? $"'{value}'" : kind switch
            {
                TokenKind.Name => "name",
                TokenKind.BlockEnd => "end of statement block",
                TokenKind.VariableEnd => "end of print statement",
                _ => kind.ToString(),
            };
            if (token.Kind == TokenKind.Eof)
            {
                throw Fail($"unexpected end of template, expected {expected}.");
            }
            throw Fail($"expected token {expected}, got {token}");
        }
        return Next();
    }

    private bool SkipOperator(string op)
    {
        if (Current.IsOperator(op))
        {
            Next();
            return true;
        }
        return false;
    }

    private bool SkipName(string name)
    {
        if (Current.IsName(name))
        {
            Next();
            return true;
        }
        return false;
    }

    // ---- statements ----

    private List<Node> Subparse(string[]? endTokens)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var body = new List<Node>();
        while (true)
        {
            var token = Current;
            switch (token.Kind)
            {
                case TokenKind.Eof:
                    if (endTokens is not null)
                    {
                        throw Fail($"Unexpected end of template. Jinja was looking for the following tags: {string.Join(" or ", endTokens.Select(t => $"'{t}'"))}.");
                    }
                    return body;
                case TokenKind.Data:
                    Next();
                    body.Add(new OutputNode(token.Value, token.Line));
                    break;
                case TokenKind.VariableBegin:
                    Next();
                    var expr = ParseTuple(withCondExpr: true);
                    Expect(TokenKind.VariableEnd);
                    body.Add(new PrintNode(expr, token.Line));
                    break;
                case TokenKind.BlockBegin:
                    Next();
                    if (endTokens is not null && Current.Kind == TokenKind.Name && endTokens.Contains(Current.Value))
                    {
                        return body;
                    }
                    body.Add(ParseStatement());
                    Expect(TokenKind.BlockEnd);
                    break;
                default:
                    throw Fail($"unexpected {token}");
            }
        }
    }

    /// <summary>Ends a statement's head, parses the body up to one of <paramref name="endTokens"/>, leaving that name current.</summary>
    private List<Node> ParseStatements(string[] endTokens, bool dropNeedle = false)
    {
        SkipOperator(":");
        Expect(TokenKind.BlockEnd);
        var body = Subparse(endTokens);
        if (dropNeedle)
        {
            Next();
        }
        return body;
    }

    private Node ParseStatement()
    {
        var token = Current;
        if (token.Kind != TokenKind.Name)
        {
            throw Fail("tag name expected");
        }
        switch (token.Value)
        {
            case "if":
                return ParseIf();
            case "for":
                return ParseFor();
            case "set":
                return ParseSet();
            case "macro":
                return ParseMacro();
            case "call":
                return ParseCallBlock();
            case "filter":
            {
                Next();
                var filters = ParseFilterChain(null, startInline: true);
                var body = ParseStatements(["endfilter"], dropNeedle: true);
                return new FilterBlockNode(filters, body, token.Line);
            }
            case "break" or "continue":
                if (_loopDepth == 0)
                {
                    throw Fail($"'{token.Value}' outside loop");
                }
                Next();
                return token.Value == "break" ? new BreakNode(token.Line) : new ContinueNode(token.Line);
            case "with":
            {
                Next();
                var assignments = new List<Node>();
                while (Current.Kind != TokenKind.BlockEnd)
                {
                    if (assignments.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                    }
                    var target = ParseAssignTarget();
                    Expect(TokenKind.Operator, "=");
                    assignments.Add(new SetNode(target, ParseExpression(withCondExpr: true), token.Line));
                }
                var body = ParseStatements(["endwith"], dropNeedle: true);
                return new ScopeNode([.. assignments, .. body], token.Line);
            }
            case "block":
            {
                Next();
                var name = Expect(TokenKind.Name).Value;
                SkipName("scoped");
                SkipName("required");
                var body = ParseStatements(["endblock"], dropNeedle: true);
                if (Current.Kind == TokenKind.Name && Current.Value == name)
                {
                    Next();
                }
                return new ScopeNode(body, token.Line);
            }
            case "generation":
            {
                Next();
                var saved = _loopDepth;
                _loopDepth = 0;
                var body = ParseStatements(["endgeneration"], dropNeedle: true);
                _loopDepth = saved;
                return new ScopeNode(body, token.Line);
            }
            default:
                throw Fail($"Encountered unknown tag '{token.Value}'.");
        }
    }

    private Node ParseIf()
    {
        var line = Next().Line;
        var branches = new List<(Expr, IReadOnlyList<Node>)>();
        IReadOnlyList<Node>? elseBody = null;
        while (true)
        {
            var test = ParseTuple(withCondExpr: false);
            var body = ParseStatements(["elif", "else", "endif"]);
            branches.Add((test, body));
            var token = Next();
            if (token.Value == "elif")
            {
                continue;
            }
            if (token.Value == "else")
            {
                elseBody = ParseStatements(["endif"], dropNeedle: true);
            }
            break;
        }
        return new IfNode(branches, elseBody, line);
    }

    private Node ParseFor()
    {
        var line = Next().Line;
        var target = ParseAssignTarget(extraEnd: "in");
        Expect(TokenKind.Name, "in");
        var iterable = ParseTuple(withCondExpr: false, extraEnd: "recursive");
        Expr? filter = null;
        if (SkipName("if"))
        {
            filter = ParseExpression(withCondExpr: true);
        }
        var recursive = SkipName("recursive");
        _loopDepth++;
        var body = ParseStatements(["endfor", "else"]);
        _loopDepth--;
        IReadOnlyList<Node>? elseBody = null;
        if (Next().Value == "else")
        {
            elseBody = ParseStatements(["endfor"], dropNeedle: true);
        }
        return new ForNode(target, iterable, filter, body, elseBody, recursive, line);
    }

    private Node ParseSet()
    {
        var line = Next().Line;
        var target = ParseAssignTarget(withNamespace: true);
        if (SkipOperator("="))
        {
            return new SetNode(target, ParseTuple(withCondExpr: true), line);
        }
        var filters = Current.IsOperator("|") ? ParseFilterChain(null, startInline: false) : [];
        var body = ParseStatements(["endset"], dropNeedle: true);
        return new SetBlockNode(target, filters, body, line);
    }

    private Expr ParseAssignTarget(string? extraEnd = null, bool withNamespace = false)
    {
        if (withNamespace && Peek().IsOperator("."))
        {
            var ns = Expect(TokenKind.Name);
            Next();
            var attribute = Expect(TokenKind.Name);
            return new GetAttrExpr(new NameExpr(ns.Value, ns.Line), attribute.Value, ns.Line);
        }
        var target = ParseTuple(withCondExpr: false, simplified: true, extraEnd: extraEnd);
        CheckAssignable(target);
        return target;
    }

    private void CheckAssignable(Expr target)
    {
        switch (target)
        {
            case NameExpr n when n.Name is "true" or "false" or "none" or "True" or "False" or "None":
                throw Fail($"Can't assign to {n.Name}");
            case NameExpr:
                return;
            case TupleExpr t:
                foreach (var item in t.Items)
                {
                    CheckAssignable(item);
                }
                return;
            default:
                throw Fail($"can't assign to '{target.GetType().Name.Replace("Expr", "")}'");
        }
    }

    private (List<string> Names, List<Expr?> Defaults) ParseSignature()
    {
        Expect(TokenKind.Operator, "(");
        var names = new List<string>();
        var defaults = new List<Expr?>();
        while (!Current.IsOperator(")"))
        {
            if (names.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
            }
            names.Add(Expect(TokenKind.Name).Value);
            if (SkipOperator("="))
            {
                defaults.Add(ParseExpression(withCondExpr: true));
            }
            else if (defaults.Any(d => d is not null))
            {
                throw Fail("non-default argument follows default argument");
            }
            else
            {
                defaults.Add(null);
            }
        }
        Expect(TokenKind.Operator, ")");
        return (names, defaults);
    }

    private Node ParseMacro()
    {
        var line = Next().Line;
        var name = Expect(TokenKind.Name).Value;
        var (names, defaults) = ParseSignature();
        var (saved, savedVarargs, savedKwargs) = (_loopDepth, _readsVarargs, _readsKwargs);
        (_loopDepth, _readsVarargs, _readsKwargs) = (0, false, false);
        var body = ParseStatements(["endmacro"], dropNeedle: true);
        var node = new MacroNode(name, names, defaults, body, _readsVarargs, _readsKwargs, line);
        (_loopDepth, _readsVarargs, _readsKwargs) = (saved, savedVarargs, savedKwargs);
        return node;
    }

    private Node ParseCallBlock()
    {
        var line = Next().Line;
        var (names, defaults) = Current.IsOperator("(") ? ParseSignature() : ([], []);
        var call = ParseExpression(withCondExpr: true) as CallExpr ?? throw Fail("expected call");
        var (saved, savedVarargs, savedKwargs) = (_loopDepth, _readsVarargs, _readsKwargs);
        (_loopDepth, _readsVarargs, _readsKwargs) = (0, false, false);
        var body = ParseStatements(["endcall"], dropNeedle: true);
        var node = new CallBlockNode(call, names, defaults, body, _readsVarargs, _readsKwargs, line);
        (_loopDepth, _readsVarargs, _readsKwargs) = (saved, savedVarargs, savedKwargs);
        return node;
    }

    // ---- expressions ----

    private bool IsTupleEnd(string? extraEnd) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd or TokenKind.Eof
        || Current.IsOperator(")")
        || (extraEnd is not null && Current.IsName(extraEnd));

    private Expr ParseTuple(bool withCondExpr, bool simplified = false, string? extraEnd = null, bool explicitParentheses = false)
    {
        var line = Current.Line;
        var items = new List<Expr>();
        var isTuple = false;
        while (true)
        {
            if (items.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
            }
            if (IsTupleEnd(extraEnd))
            {
                break;
            }
            items.Add(simplified ? ParsePrimary() : ParseExpression(withCondExpr));
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
                throw Fail($"Expected an expression, got {Current}");
            }
        }
        return new TupleExpr(items, line);
    }

    private Expr ParseExpression(bool withCondExpr) => withCondExpr ? ParseCondExpr() : ParseOr();

    private Expr ParseCondExpr()
    {
        var line = Current.Line;
        var expr = ParseOr();
        while (SkipName("if"))
        {
            var test = ParseOr();
            var otherwise = SkipName("else") ? ParseCondExpr() : null;
            expr = new CondExpr(test, expr, otherwise, line);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var line = Current.Line;
        var left = ParseAnd();
        while (SkipName("or"))
        {
            left = new BinaryExpr("or", left, ParseAnd(), line);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var line = Current.Line;
        var left = ParseNot();
        while (SkipName("and"))
        {
            left = new BinaryExpr("and", left, ParseNot(), line);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var line = Next().Line;
            return new UnaryExpr("not", ParseNot(), line);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var line = Current.Line;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Kind == TokenKind.Operator && CompareOperators.Contains(Current.Value))
            {
                var op = Next().Value;
                rest.Add((op, ParseMath1()));
            }
            else if (SkipName("in"))
            {
                rest.Add(("in", ParseMath1()));
            }
            else if (Current.IsName("not") && Peek().IsName("in"))
            {
                Next();
                Next();
                rest.Add(("not in", ParseMath1()));
            }
            else
            {
                break;
            }
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, line);
    }

    private Expr ParseMath1()
    {
        var line = Current.Line;
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var op = Next().Value;
            left = new BinaryExpr(op, left, ParseConcat(), line);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var line = Current.Line;
        var left = ParseMath2();
        while (SkipOperator("~"))
        {
            left = new BinaryExpr("~", left, ParseMath2(), line);
        }
        return left;
    }

    private Expr ParseMath2()
    {
        var line = Current.Line;
        var left = ParsePow();
        while (Current.Kind == TokenKind.Operator && Current.Value is "*" or "/" or "//" or "%")
        {
            var op = Next().Value;
            left = new BinaryExpr(op, left, ParsePow(), line);
        }
        return left;
    }

    private Expr ParsePow()
    {
        var line = Current.Line;
        var left = ParseUnary(withFilter: true);
        while (SkipOperator("**"))
        {
            left = new BinaryExpr("**", left, ParseUnary(withFilter: true), line);
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        var token = Current;
        Expr node;
        if (token.IsOperator("-") || token.IsOperator("+"))
        {
            Next();
            node = new UnaryExpr(token.Value, ParseUnary(withFilter: false), token.Line);
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        if (withFilter)
        {
            node = ParseFilterExpr(node);
        }
        return node;
    }

    private Expr ParsePrimary()
    {
        var token = Current;
        switch (token.Kind)
        {
            case TokenKind.Name:
                Next();
                return token.Value switch
                {
                    "true" or "True" => new ConstExpr(true, token.Line),
                    "false" or "False" => new ConstExpr(false, token.Line),
                    "none" or "None" => new ConstExpr(null, token.Line),
                    _ => Name(token),
                };
            case TokenKind.String:
            {
                Next();
                var text = (string)token.Literal!;
                while (Current.Kind == TokenKind.String)
                {
                    text += (string)Next().Literal!;
                }
                return new ConstExpr(text, token.Line);
            }
            case TokenKind.Integer or TokenKind.Float:
                Next();
                return new ConstExpr(token.Literal, token.Line);
            case TokenKind.Operator when token.Value == "(":
            {
                Next();
                var expr = ParseTuple(withCondExpr: true, explicitParentheses: true);
                Expect(TokenKind.Operator, ")");
                return expr;
            }
            case TokenKind.Operator when token.Value == "[":
            {
                Next();
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                    }
                    if (Current.IsOperator("]"))
                    {
                        break;
                    }
                    items.Add(ParseExpression(withCondExpr: true));
                }
                Expect(TokenKind.Operator, "]");
                return new ListExpr(items, token.Line);
            }
            case TokenKind.Operator when token.Value == "{":
            {
                Next();
                var pairs = new List<(Expr, Expr)>();
                while (!Current.IsOperator("}"))
                {
                    if (pairs.Count > 0)
                    {
                        Expect(TokenKind.Operator, ",");
                    }
                    if (Current.IsOperator("}"))
                    {
                        break;
                    }
                    var key = ParseExpression(withCondExpr: true);
                    Expect(TokenKind.Operator, ":");
                    pairs.Add((key, ParseExpression(withCondExpr: true)));
                }
                Expect(TokenKind.Operator, "}");
                return new DictExpr(pairs, token.Line);
            }
            case TokenKind.Eof:
                throw Fail("unexpected end of template");
            default:
                throw Fail($"unexpected {token}");
        }
    }

    private NameExpr Name(Token token)
    {
        _readsVarargs |= token.Value == "varargs";
        _readsKwargs |= token.Value == "kwargs";
        return new NameExpr(token.Value, token.Line);
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
                node = new CallExpr(node, ParseCallArguments(), node.Line);
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
                node = ParseFilterChain(node, startInline: false)[^1];
            }
            else if (Current.IsName("is"))
            {
                node = ParseTest(node);
            }
            else if (Current.IsOperator("("))
            {
                node = new CallExpr(node, ParseCallArguments(), node.Line);
            }
            else
            {
                return node;
            }
        }
    }

    /// <summary>Parses "|f1(args)|f2" (or "f1|f2" when <paramref name="startInline"/>); each filter wraps the previous one.</summary>
    private List<FilterExpr> ParseFilterChain(Expr? node, bool startInline)
    {
        var chain = new List<FilterExpr>();
        Expr? current = node;
        while (Current.IsOperator("|") || startInline)
        {
            if (!startInline)
            {
                Next();
            }
            startInline = false;
            var nameToken = Expect(TokenKind.Name);
            var name = nameToken.Value;
            while (Current.IsOperator("."))
            {
                Next();
                name += "." + Expect(TokenKind.Name).Value;
            }
            var args = Current.IsOperator("(") ? ParseCallArguments() : CallArguments.None;
            var filter = new FilterExpr(current, name, args, nameToken.Line);
            chain.Add(filter);
            current = filter;
        }
        return chain;
    }

    private Expr ParseTest(Expr node)
    {
        var line = Next().Line;
        var negated = SkipName("not");
        var name = Expect(TokenKind.Name).Value;
        while (Current.IsOperator("."))
        {
            Next();
            name += "." + Expect(TokenKind.Name).Value;
        }
        CallArguments args;
        if (Current.IsOperator("("))
        {
            args = ParseCallArguments();
        }
        else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float
                  || Current.IsOperator("(") || Current.IsOperator("[") || Current.IsOperator("{"))
                 && !(Current.IsName("else") || Current.IsName("or") || Current.IsName("and")))
        {
            if (Current.IsName("is"))
            {
                throw Fail("You cannot chain multiple tests with is");
            }
            var arg = ParsePostfix(ParsePrimary());
            args = new CallArguments([arg], []);
        }
        else
        {
            args = CallArguments.None;
        }
        return new TestExpr(node, name, args, negated, line);
    }

    private Expr ParseSubscript(Expr node)
    {
        var token = Next();
        if (token.IsOperator("."))
        {
            var attribute = Next();
            if (attribute.Kind == TokenKind.Name)
            {
                return new GetAttrExpr(node, attribute.Value, token.Line);
            }
            if (attribute.Kind == TokenKind.Integer)
            {
                return new GetItemExpr(node, new ConstExpr(attribute.Literal, attribute.Line), token.Line);
            }
            throw Fail("expected name or number", attribute);
        }
        var args = new List<Expr>();
        while (!Current.IsOperator("]"))
        {
            if (args.Count > 0)
            {
                Expect(TokenKind.Operator, ",");
            }
            args.Add(ParseSubscribed());
        }
        Expect(TokenKind.Operator, "]");
        return new GetItemExpr(node, args.Count == 1 ? args[0] : new TupleExpr(args, token.Line), token.Line);
    }

    private Expr ParseSubscribed()
    {
        var line = Current.Line;
        Expr? start;
        if (Current.IsOperator(":"))
        {
            Next();
            start = null;
        }
        else
        {
            var node = ParseExpression(withCondExpr: true);
            if (!Current.IsOperator(":"))
            {
                return node;
            }
            Next();
            start = node;
        }
        Expr? stop = null;
        Expr? step = null;
        if (!Current.IsOperator(":") && !Current.IsOperator("]") && !Current.IsOperator(","))
        {
            stop = ParseExpression(withCondExpr: true);
        }
        if (SkipOperator(":"))
        {
            if (!Current.IsOperator("]") && !Current.IsOperator(","))
            {
                step = ParseExpression(withCondExpr: true);
            }
        }
        return new SliceExpr(start, stop, step, line);
    }

    private CallArguments ParseCallArguments()
    {
        Expect(TokenKind.Operator, "(");
        var positional = new List<Expr>();
        var keyword = new List<(string, Expr)>();
        Expr? dynamicPositional = null;
        Expr? dynamicKeyword = null;
        var first = true;
        while (!Current.IsOperator(")"))
        {
            if (!first)
            {
                Expect(TokenKind.Operator, ",");
                if (Current.IsOperator(")"))
                {
                    break;
                }
            }
            first = false;
            if (Current.IsOperator("*"))
            {
                Next();
                dynamicPositional = ParseExpression(withCondExpr: true);
            }
            else if (Current.IsOperator("**"))
            {
                Next();
                dynamicKeyword = ParseExpression(withCondExpr: true);
            }
            else if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                var name = Next().Value;
                if (keyword.Any(k => k.Item1 == name))
                {
                    throw Fail($"keyword argument repeated: {name}");
                }
                Next();
                keyword.Add((name, ParseExpression(withCondExpr: true)));
            }
            else
            {
                if (keyword.Count > 0)
                {
                    throw Fail("positional argument follows keyword argument");
                }
                positional.Add(ParseExpression(withCondExpr: true));
            }
        }
        Expect(TokenKind.Operator, ")");
        return new CallArguments(positional, keyword, dynamicPositional, dynamicKeyword);
    }
}
