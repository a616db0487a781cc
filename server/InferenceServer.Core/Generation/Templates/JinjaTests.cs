namespace InferenceServer.Generation.Templates;

/// <summary>The tests (<c>value is name(args)</c>), with Jinja2's semantics.</summary>
internal static class JinjaTests
{
    private delegate bool Test(object? value, JinjaArguments args);

    private static object? Arg(JinjaArguments a) => a.Required(0, "other");

    private static readonly Dictionary<string, Test> Tests = new(StringComparer.Ordinal)
    {
        ["defined"] = (v, _) => v is not JinjaUndefined,
        ["undefined"] = (v, _) => v is JinjaUndefined,
        ["none"] = (v, _) => v is null,
        ["string"] = (v, _) => v is string,
        ["number"] = (v, _) => PythonOps.IsNumber(v),
        ["integer"] = (v, _) => v is long or System.Numerics.BigInteger,
        ["float"] = (v, _) => v is double,
        ["boolean"] = (v, _) => v is bool,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["mapping"] = (v, _) => v is JinjaDict,
        ["sequence"] = (v, _) => v is string or IReadOnlyList<object?> or JinjaDict or JinjaUndefined,
        ["iterable"] = (v, _) => v is string or IReadOnlyList<object?> or JinjaDict or JinjaUndefined or JinjaGenerator or JinjaDictView,
        ["callable"] = (v, _) => v is JinjaCallable or JinjaRenderer.RecursiveLoop,
        ["odd"] = (v, _) => PythonOps.PyEquals(PythonOps.Arithmetic("%", v, 2L), 1L),
        ["even"] = (v, _) => PythonOps.PyEquals(PythonOps.Arithmetic("%", v, 2L), 0L),
        ["divisibleby"] = (v, a) => PythonOps.AsDouble(PythonOps.Arithmetic("%", v, a.Required(0, "num"))) == 0,
        ["equalto"] = (v, a) => PythonOps.PyEquals(v, Arg(a)),
        ["eq"] = (v, a) => PythonOps.PyEquals(v, Arg(a)),
        ["=="] = (v, a) => PythonOps.PyEquals(v, Arg(a)),
        ["ne"] = (v, a) => !PythonOps.PyEquals(v, Arg(a)),
        ["!="] = (v, a) => !PythonOps.PyEquals(v, Arg(a)),
        ["lt"] = (v, a) => PythonOps.Compare(v, Arg(a), "<") == -1,
        ["lessthan"] = (v, a) => PythonOps.Compare(v, Arg(a), "<") == -1,
        ["<"] = (v, a) => PythonOps.Compare(v, Arg(a), "<") == -1,
        ["le"] = (v, a) => PythonOps.Compare(v, Arg(a), "<=") is -1 or 0,
        ["<="] = (v, a) => PythonOps.Compare(v, Arg(a), "<=") is -1 or 0,
        ["gt"] = (v, a) => PythonOps.Compare(v, Arg(a), ">") == 1,
        ["greaterthan"] = (v, a) => PythonOps.Compare(v, Arg(a), ">") == 1,
        [">"] = (v, a) => PythonOps.Compare(v, Arg(a), ">") == 1,
        ["ge"] = (v, a) => PythonOps.Compare(v, Arg(a), ">=") is 1 or 0,
        [">="] = (v, a) => PythonOps.Compare(v, Arg(a), ">=") is 1 or 0,
        ["in"] = (v, a) => PythonOps.Contains(a.Required(0, "seq"), v),
        ["sameas"] = (v, a) => SameAs(v, Arg(a)),
        ["lower"] = (v, _) => CodePoints.IsLowerString(PythonFormat.Str(v)),
        ["upper"] = (v, _) => CodePoints.IsUpperString(PythonFormat.Str(v)),
        ["escaped"] = (_, _) => false,
        ["filter"] = (v, _) => v is string s && JinjaFilters.Exists(s),
        ["test"] = (v, _) => v is string s && Tests!.ContainsKey(s),
    };

    private static bool SameAs(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        (long x, long y) => x == y && x is >= -5 and <= 256,
        _ => ReferenceEquals(a, b),
    };

    public static bool Apply(string name, object? value, JinjaArguments args, JinjaRenderer renderer)
    {
        if (!Tests.TryGetValue(name, out var test))
        {
            throw new JinjaException($"No test named '{name}'.");
        }
        return test(value, args);
    }
}
