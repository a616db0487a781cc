using System.Buffers;

namespace InferenceServer.Configuration;

/// <summary>Which model names are acceptable: a single path segment of letters, digits, '_', '-' and '.', never "." or "..".</summary>
public static class ModelNames
{
    private static readonly SearchValues<char> Allowed =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.");

    /// <summary>Whether <paramref name="name"/> may name a model (and so a directory of the repository).</summary>
    public static bool IsValid(ReadOnlySpan<char> name) =>
        name.Length is > 0 and <= 256 && !name.ContainsAnyExcept(Allowed) && name[0] != '.' && !name.Contains("..", StringComparison.Ordinal);
}
