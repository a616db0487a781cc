using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Tests.Packaging;

/// <summary>
/// A <c>.dockerignore</c> file, matched as Docker does: patterns relative to the context root (a leading or trailing
/// slash ignored), <c>*</c> and <c>?</c> within one path segment, <c>**</c> across any number of segments, <c>!</c>
/// re-including, the last matching pattern winning; a pattern that matches a directory excludes everything in it.
/// </summary>
internal sealed class DockerIgnore
{
    private readonly IReadOnlyList<(Regex Pattern, bool Exclude, string Source)> _rules;

    private DockerIgnore(IReadOnlyList<(Regex, bool, string)> rules) => _rules = rules;

    public static DockerIgnore Load(string path) => Parse(File.ReadAllLines(path));

    public static DockerIgnore Parse(IEnumerable<string> lines) => new(lines
        .Select(l => l.Trim())
        .Where(l => l.Length > 0 && !l.StartsWith('#'))
        .Select(l => l.StartsWith('!') ? (Glob(l[1..]), false, l) : (Glob(l), true, l))
        .ToList());

    /// <summary>Whether the context path (forward slashes, relative to the root) is left out of the build context.</summary>
    public bool Excludes(string path)
    {
        var excluded = false;
        foreach (var (pattern, exclude, _) in _rules)
        {
            // The path itself or any folder above it.
            var segments = path.Split('/');
            for (var n = 1; n <= segments.Length; n++)
            {
                if (pattern.IsMatch(string.Join('/', segments.Take(n))))
                {
                    excluded = exclude;
                    break;
                }
            }
        }
        return excluded;
    }

    private static Regex Glob(string pattern)
    {
        pattern = pattern.Trim('/');
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '*' && i + 1 < pattern.Length && pattern[i + 1] == '*')
            {
                // "**/" matches zero or more folders; a trailing "**" anything below.
                i++;
                if (i + 1 < pattern.Length && pattern[i + 1] == '/')
                {
                    i++;
                    regex.Append("(?:.*/)?");
                }
                else
                {
                    regex.Append(".*");
                }
            }
            else if (c == '*')
            {
                regex.Append("[^/]*");
            }
            else if (c == '?')
            {
                regex.Append("[^/]");
            }
            else
            {
                regex.Append(Regex.Escape(c.ToString()));
            }
        }
        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
