namespace InferenceServer.Generation.Templates;

// The syntax tree the parser builds and the renderer walks. Every node records its template line for errors.

internal abstract record Expr(int Line);

internal sealed record ConstExpr(object? Value, int Line) : Expr(Line);

internal sealed record ListExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record TupleExpr(IReadOnlyList<Expr> Items, int Line) : Expr(Line);

internal sealed record DictExpr(IReadOnlyList<(Expr Key, Expr Value)> Pairs, int Line) : Expr(Line);

internal sealed record NameExpr(string Name, int Line) : Expr(Line);

internal sealed record GetAttrExpr(Expr Target, string Attribute, int Line) : Expr(Line);

internal sealed record GetItemExpr(Expr Target, Expr Index, int Line) : Expr(Line);

internal sealed record SliceExpr(Expr? Start, Expr? Stop, Expr? Step, int Line) : Expr(Line);

internal sealed record CallArguments(IReadOnlyList<Expr> Positional, IReadOnlyList<(string Name, Expr Value)> Keyword, Expr? DynamicPositional = null, Expr? DynamicKeyword = null)
{
    public static readonly CallArguments None = new([], []);
}

internal sealed record CallExpr(Expr Callee, CallArguments Arguments, int Line) : Expr(Line);

internal sealed record FilterExpr(Expr? Target, string Name, CallArguments Arguments, int Line) : Expr(Line);

internal sealed record TestExpr(Expr Target, string Name, CallArguments Arguments, bool Negated, int Line) : Expr(Line);

internal sealed record UnaryExpr(string Operator, Expr Operand, int Line) : Expr(Line);

internal sealed record BinaryExpr(string Operator, Expr Left, Expr Right, int Line) : Expr(Line);

internal sealed record CompareExpr(Expr First, IReadOnlyList<(string Operator, Expr Operand)> Rest, int Line) : Expr(Line);

internal sealed record CondExpr(Expr Test, Expr Then, Expr? Else, int Line) : Expr(Line);

internal abstract record Node(int Line);

internal sealed record OutputNode(string Text, int Line) : Node(Line);

internal sealed record PrintNode(Expr Value, int Line) : Node(Line);

internal sealed record IfNode(IReadOnlyList<(Expr Test, IReadOnlyList<Node> Body)> Branches, IReadOnlyList<Node>? Else, int Line) : Node(Line);

internal sealed record ForNode(Expr Target, Expr Iterable, Expr? Filter, IReadOnlyList<Node> Body, IReadOnlyList<Node>? Else, bool Recursive, int Line) : Node(Line);

internal sealed record SetNode(Expr Target, Expr Value, int Line) : Node(Line);

internal sealed record SetBlockNode(Expr Target, IReadOnlyList<FilterExpr> Filters, IReadOnlyList<Node> Body, int Line) : Node(Line);

/// <summary>A macro; extra positional or keyword arguments are accepted only when its body reads varargs or kwargs.</summary>
internal sealed record MacroNode(string Name, IReadOnlyList<string> Parameters, IReadOnlyList<Expr?> Defaults, IReadOnlyList<Node> Body, bool CatchVarargs, bool CatchKwargs, int Line) : Node(Line);

internal sealed record CallBlockNode(CallExpr Call, IReadOnlyList<string> Parameters, IReadOnlyList<Expr?> Defaults, IReadOnlyList<Node> Body, bool CatchVarargs, bool CatchKwargs, int Line) : Node(Line);

internal sealed record FilterBlockNode(IReadOnlyList<FilterExpr> Filters, IReadOnlyList<Node> Body, int Line) : Node(Line);

internal sealed record BreakNode(int Line) : Node(Line);

internal sealed record ContinueNode(int Line) : Node(Line);

/// <summary>{% generation %} (transformers' AssistantTracker) and other bodies rendered as they are.</summary>
internal sealed record ScopeNode(IReadOnlyList<Node> Body, int Line) : Node(Line);
