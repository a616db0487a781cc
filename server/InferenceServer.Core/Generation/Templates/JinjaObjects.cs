using System.Collections;

namespace InferenceServer.Generation.Templates;

/// <summary>A Python tuple: an immutable list that prints as <c>(a, b)</c>.</summary>
internal sealed class JinjaTuple(object?[] items) : IReadOnlyList<object?>
{
    public object?[] Items { get; } = items;

    public int Count => Items.Length;

    public object? this[int index] => Items[index];

    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)Items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => Items.GetEnumerator();
}

/// <summary>
/// Jinja2's default (lenient) Undefined: prints as "", is falsy, iterates as empty; any other use
/// (attribute, item, arithmetic, call) raises with <see cref="Hint"/>.
/// </summary>
internal sealed class JinjaUndefined(string hint)
{
    public string Hint { get; } = hint;

    public JinjaException Fail() => new(Hint);

    public static JinjaUndefined ForName(string name) => new($"'{name}' is undefined");

    public static JinjaUndefined ForAttribute(object? owner, object? attribute) =>
        new($"'{PythonFormat.TypeName(owner)} object' has no attribute {PythonFormat.Repr(attribute)}");

    public override string ToString() => "";
}

/// <summary>The object <c>namespace(...)</c> returns: attributes settable with <c>{% set ns.x = ... %}</c>.</summary>
internal sealed class JinjaNamespace
{
    public JinjaDict Attributes { get; } = new();
}

/// <summary>A callable value: a global function, a macro, a bound method, a loop's <c>cycle</c>.</summary>
internal sealed class JinjaCallable(string name, Func<IReadOnlyList<object?>, IReadOnlyDictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;

    public object? Invoke(IReadOnlyList<object?> args, IReadOnlyDictionary<string, object?> kwargs) => invoke(args, kwargs);
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopObject(IReadOnlyList<object?> items, int depth)
{
    private static readonly object NotCalled = new();
    private object? _lastChanged = NotCalled;

    public int Index0 { get; set; }

    public object? GetAttribute(string name) => name switch
    {
        "index" => (long)(Index0 + 1),
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => (long)depth,
        "depth0" => (long)(depth - 1),
        "previtem" => Index0 > 0 ? items[Index0 - 1] : new JinjaUndefined("there is no previous item"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : new JinjaUndefined("there is no next item"),
        "cycle" => new JinjaCallable("cycle", (args, _) =>
            args.Count == 0 ? throw new JinjaException("no items for cycling given") : args[Index0 % args.Count]),
        "changed" => new JinjaCallable("changed", (args, _) =>
        {
            var value = new JinjaTuple([.. args]);
            if (_lastChanged != NotCalled && PythonOps.PyEquals(_lastChanged, value))
            {
                return false;
            }
            _lastChanged = value;
            return true;
        }),
        _ => JinjaUndefined.ForAttribute(this, name),
    };
}

/// <summary>
/// A Python generator or iterator (what map, select, reject, selectattr, rejectattr, unique and reverse return):
/// always truthy, no len(), not reversible, not indexable, and consumed by the first iteration.
/// </summary>
internal sealed class JinjaGenerator(IReadOnlyList<object?> items, string typeName = "generator")
{
    private bool _consumed;

    public string TypeName { get; } = typeName;

    public IReadOnlyList<object?> Consume()
    {
        if (_consumed)
        {
            return [];
        }
        _consumed = true;
        return items;
    }
}

/// <summary>
/// Python's dict views (<c>d.items()</c>, <c>d.keys()</c>, <c>d.values()</c>): iterable any number of times, with a
/// len() and <c>in</c>, printed as <c>dict_items([...])</c>, but not indexable.
/// </summary>
internal sealed class JinjaDictView(string typeName, List<object?> items)
{
    public string TypeName { get; } = typeName;

    public List<object?> Items { get; } = items;
}

/// <summary>Python's range: a lazy sequence of ints that prints as <c>range(0, 3)</c>.</summary>
internal sealed class JinjaRange(long start, long stop, long step, int count) : IReadOnlyList<object?>
{
    public long Start => start;

    public long Step => step;

    public int Count { get; } = count;

    public object? this[int index] => start + index * step;

    public IEnumerator<object?> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return start + i * step;
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => step == 1 ? $"range({start}, {stop})" : $"range({start}, {stop}, {step})";
}
