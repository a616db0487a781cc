namespace InferenceServer.Perf;

/// <summary>Reads one <c>--flag value</c> or <c>--flag=value</c> pair of a command line.</summary>
internal static class Flags
{
    /// <summary>The flag at <paramref name="i"/> and its value; advances <paramref name="i"/> past a separate value.</summary>
    public static (string Name, string Value) Next(IReadOnlyList<string> args, ref int i)
    {
        var name = args[i];
        var eq = name.IndexOf('=', StringComparison.Ordinal);
        if (eq > 0)
        {
            return (name[..eq], name[(eq + 1)..]);
        }
        if (i + 1 < args.Count)
        {
            return (name, args[++i]);
        }
        throw new ArgumentException($"option {name} needs a value");
    }
}
