using System.Collections;

namespace InferenceServer.Generation.Templates;

/// <summary>
/// A Python dict for templates: insertion-ordered, keys compared as Python compares them (1 == 1.0 == True).
/// Keys are usually strings.
/// </summary>
public sealed class JinjaDict : IEnumerable<KeyValuePair<object, object?>>
{
    private readonly Dictionary<object, int> _index = new(PythonKeyComparer.Instance);
    private readonly List<KeyValuePair<object, object?>> _entries = [];

    /// <summary>An empty dict.</summary>
    public JinjaDict()
    {
    }

    /// <summary>A dict holding <paramref name="entries"/> in their order (values as given: use engine values).</summary>
    public JinjaDict(IEnumerable<KeyValuePair<string, object?>> entries)
    {
        foreach (var (key, value) in entries)
        {
            this[key] = value;
        }
    }

    /// <summary>The number of entries.</summary>
    public int Count => _entries.Count;

    /// <summary>The keys, in insertion order.</summary>
    public IEnumerable<object> Keys => _entries.Select(e => e.Key);

    /// <summary>The values, in insertion order.</summary>
    public IEnumerable<object?> Values => _entries.Select(e => e.Value);

    /// <summary>Gets or sets (replacing in place, or appending) the value of <paramref name="key"/>.</summary>
    public object? this[object key]
    {
        get => _index.TryGetValue(key, out var i) ? _entries[i].Value : throw new KeyNotFoundException(PythonFormat.Repr(key));
        set
        {
            if (_index.TryGetValue(key, out var i))
            {
                _entries[i] = new(_entries[i].Key, value);
            }
            else
            {
                _index[key] = _entries.Count;
                _entries.Add(new(key, value));
            }
        }
    }

    /// <summary>Adds or replaces an entry; returns this dict (for initializers).</summary>
    public JinjaDict Add(string key, object? value)
    {
        this[key] = value;
        return this;
    }

    /// <summary>Whether <paramref name="key"/> is present.</summary>
    public bool ContainsKey(object key) => _index.ContainsKey(key);

    /// <summary>Looks a key up.</summary>
    public bool TryGetValue(object key, out object? value)
    {
        if (_index.TryGetValue(key, out var i))
        {
            value = _entries[i].Value;
            return true;
        }
        value = null;
        return false;
    }

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<object, object?>> GetEnumerator() => _entries.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Python's <c>str(dict)</c>.</summary>
    public override string ToString() => PythonFormat.Repr(this);
}

/// <summary>Hashes and compares dict keys as Python does: numbers by value across int, float and bool.</summary>
internal sealed class PythonKeyComparer : IEqualityComparer<object>
{
    public static readonly PythonKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => PythonOps.PyEquals(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => (b ? 1L : 0L).GetHashCode(),
        long l => l.GetHashCode(),
        double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => ((long)d).GetHashCode(),
        string s => StringComparer.Ordinal.GetHashCode(s),
        JinjaUndefined => 0x5eed,
        JinjaTuple t => t.Items.Aggregate(17, (h, v) => h * 31 + (v is null ? 0 : GetHashCode(v))),
        _ => obj.GetHashCode(),
    };
}
