using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Tests.Docs;

/// <summary>
/// Compares the output a document shows for a command with the command's real output: line by line and exactly
/// (trailing blank lines aside, and <c>\r\n</c> read as <c>\n</c>), after masking, in both, the values that differ
/// from run to run. Only JSON members are masked, and only when the value has the form given here:
/// <list type="bullet">
/// <item><c>"id"</c> or <c>"request_id"</c>: a string of at least 16 lower-case hex digits, after an optional prefix
/// of lower-case letters ending in <c>-</c> (such as <c>chatcmpl-</c>), which is kept;</item>
/// <item><c>"created"</c>: an integer (Unix seconds);</item>
/// <item><c>"timestamp"</c>: an integer, or an ISO 8601 UTC string such as <c>"2025-01-02T03:04:05.678Z"</c>;</item>
/// <item>a duration, a key ending in <c>_ms</c>, <c>_us</c> or <c>_ns</c>: a number.</item>
/// </list>
/// The mask replaces the value only (the key, the quotes and a kept prefix stay), so a string shown where the server
/// sends a number, a different prefix, or any other member still differ.
/// </summary>
internal static partial class ShownOutput
{
    private static readonly (Regex Pattern, string Mask)[] Masks =
    [
        (GeneratedId(), "<id>"),
        (Created(), "<created>"),
        (NumericTimestamp(), "<timestamp>"),
        (TextTimestamp(), "<timestamp>"),
        (Duration(), "<duration>"),
    ];

    /// <summary>Null when <paramref name="actual"/> is what <paramref name="shown"/> shows; else the first difference.</summary>
    public static string? Difference(IReadOnlyList<string> shown, string actual)
    {
        var expected = Lines(shown).Select(Mask).ToList();
        var got = Lines(actual.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n')).Select(Mask).ToList();
        for (var i = 0; i < Math.Max(expected.Count, got.Count); i++)
        {
            if (i >= expected.Count)
            {
                return $"output line {i + 1} is not shown: {Excerpt(got[i], 0)}";
            }
            if (i >= got.Count)
            {
                return $"output line {i + 1} is shown but the command did not print it: {Excerpt(expected[i], 0)}";
            }
            if (expected[i] != got[i])
            {
                var column = 0;
                while (column < expected[i].Length && column < got[i].Length && expected[i][column] == got[i][column])
                {
                    column++;
                }
                return $"output line {i + 1} differs at column {column + 1} (after masking): shown {Excerpt(expected[i], column)}, printed {Excerpt(got[i], column)}";
            }
        }
        return null;
    }

    /// <summary>A line with its varying values masked.</summary>
    public static string Mask(string line)
    {
        foreach (var (pattern, mask) in Masks)
        {
            line = pattern.Replace(line, m => m.Groups["key"].Value + mask);
        }
        return line;
    }

    /// <summary>Where in <paramref name="line"/> the masks apply (the values they replace).</summary>
    public static IReadOnlyList<Range> MaskedRanges(string line)
    {
        var ranges = new List<Range>();
        foreach (var (pattern, _) in Masks)
        {
            foreach (Match m in pattern.Matches(line))
            {
                var key = m.Groups["key"];
                ranges.Add(new Range(key.Index + key.Length, m.Index + m.Length));
            }
        }
        return ranges;
    }

    /// <summary>
    /// Copies of <paramref name="shown"/> that show something else: one character changed (a letter or digit outside
    /// the masked values, at the start, the middle and the end of each line), the last line dropped, a line added.
    /// The comparison must report each of them as a difference.
    /// </summary>
    public static IEnumerable<(string Change, IReadOnlyList<string> Lines)> Mutations(IReadOnlyList<string> shown)
    {
        var lines = Lines(shown).ToList();
        for (var n = 0; n < lines.Count; n++)
        {
            var line = lines[n];
            var masked = MaskedRanges(line);
            var candidates = Enumerable.Range(0, line.Length)
                .Where(i => char.IsAsciiLetterOrDigit(line[i]) && !masked.Any(r => i >= r.Start.Value && i < r.End.Value))
                .ToList();
            foreach (var i in candidates.Count == 0 ? [] : new[] { candidates[0], candidates[candidates.Count / 2], candidates[^1] }.Distinct())
            {
                var changed = new StringBuilder(line) { [i] = Changed(line[i]) }.ToString();
                yield return ($"line {n + 1} column {i + 1} '{line[i]}' -> '{changed[i]}'", [.. lines[..n], changed, .. lines[(n + 1)..]]);
            }
        }
        if (lines.Count > 0)
        {
            yield return ("the last line dropped", lines[..^1]);
        }
        yield return ("a line added", [.. lines, "{}"]);
    }

    private static char Changed(char c) => c switch
    {
        '9' => '0',
        'z' => 'a',
        'Z' => 'A',
        _ => (char)(c + 1),
    };

    private static IEnumerable<string> Lines(IReadOnlyList<string> lines)
    {
        var count = lines.Count;
        while (count > 0 && lines[count - 1].Trim().Length == 0)
        {
            count--;
        }
        return lines.Take(count);
    }

    private static string Excerpt(string line, int column)
    {
        var start = Math.Max(0, column - 30);
        var end = Math.Min(line.Length, column + 50);
        return $"'{(start > 0 ? "…" : "")}{line[start..end]}{(end < line.Length ? "…" : "")}'";
    }

    [GeneratedRegex("""(?<key>"(?:id|request_id)"\s*:\s*"(?:[a-z]+-)?)[0-9a-f]{16,}(?=")""")]
    private static partial Regex GeneratedId();

    [GeneratedRegex("""(?<key>"created"\s*:\s*)[0-9]+(?![0-9.eE])""")]
    private static partial Regex Created();

    [GeneratedRegex("""(?<key>"timestamp"\s*:\s*)[0-9]+(?![0-9.eE])""")]
    private static partial Regex NumericTimestamp();

    [GeneratedRegex("""(?<key>"timestamp"\s*:\s*")[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z(?=")""")]
    private static partial Regex TextTimestamp();

    [GeneratedRegex("""(?<key>"[a-z0-9_]*_(?:ms|us|ns)"\s*:\s*)-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?(?![0-9.eE])""")]
    private static partial Regex Duration();
}
