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

    /// <summary>
    /// Whether <paramref name="path"/> may name a model file inside a version directory (<c>default_model_filename</c>): a
    /// file name as <see cref="IsValid"/> accepts it, or one folder and a file name joined by '/' (<c>onnx/model_fp16.onnx</c>,
    /// as hub exports lay out their graphs). Absolute paths, '\', '..' and deeper paths are refused, so the file stays
    /// inside the version directory.
    /// </summary>
    public static bool IsValidModelFile(ReadOnlySpan<char> path)
    {
        var slash = path.IndexOf('/');
        return slash < 0 ? IsValid(path) : IsValid(path[..slash]) && IsValid(path[(slash + 1)..]);
    }
}
