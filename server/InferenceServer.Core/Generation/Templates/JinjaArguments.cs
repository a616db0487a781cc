namespace InferenceServer.Generation.Templates;

/// <summary>Evaluated call arguments, bound by position or keyword as Python binds them.</summary>
internal sealed class JinjaArguments(IReadOnlyList<object?> positional, IReadOnlyDictionary<string, object?> keyword, string callee)
{
    public static readonly IReadOnlyDictionary<string, object?> NoKeywords = new Dictionary<string, object?>();

    public IReadOnlyList<object?> Positional { get; } = positional;

    public IReadOnlyDictionary<string, object?> Keyword { get; } = keyword;

    public int Count => Positional.Count + Keyword.Count;

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>, else <paramref name="fallback"/>.</summary>
    public object? Get(int index, string name, object? fallback = null)
    {
        if (index < Positional.Count)
        {
            if (Keyword.ContainsKey(name))
            {
                throw new JinjaException($"{callee}() got multiple values for argument '{name}'");
            }
            return Positional[index];
        }
        return Keyword.TryGetValue(name, out var value) ? value : fallback;
    }

    public bool Has(int index, string name) => index < Positional.Count || Keyword.ContainsKey(name);

    public object? Required(int index, string name) =>
        Has(index, name) ? Get(index, name) : throw new JinjaException($"{callee}() missing required argument '{name}'");

    /// <summary>Rejects arguments beyond <paramref name="maxPositional"/> or not among <paramref name="names"/>.</summary>
    public JinjaArguments Check(int maxPositional, params string[] names)
    {
        if (Positional.Count > maxPositional)
        {
            throw new JinjaException($"{callee}() takes at most {maxPositional} arguments ({Positional.Count} given)");
        }
        foreach (var key in Keyword.Keys)
        {
            if (!names.Contains(key))
            {
                throw new JinjaException($"{callee}() got an unexpected keyword argument '{key}'");
            }
        }
        return this;
    }
}
