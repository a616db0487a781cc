namespace InferenceServer.Tests.Docs;

/// <summary>
/// One example of a shell session in a Markdown document: the command after <c>$ </c> (with its continuation lines,
/// multi-line quoted arguments and here-document, joined with <c>\n</c>) and the output lines shown after it.
/// </summary>
internal sealed record ShellExample(int Line, string Text, ShellRead Read, IReadOnlyList<string> Output)
{
    /// <summary>The command's first line, to name it in a message.</summary>
    public string Title => Text.Split('\n')[0];

    public override string ToString() => $"line {Line}: $ {Title}";
}

/// <summary>
/// The shell sessions of a Markdown document: every fenced block in a shell language (<c>sh</c>, <c>shell</c>,
/// <c>bash</c>, <c>console</c>) that has a line starting with <c>$ </c>. In such a block each <c>$ </c> line starts a
/// command; the command takes further lines while the shell would (a trailing backslash, an open quote, a
/// here-document not yet closed by its delimiter line); the lines after it, up to the next <c>$ </c> line or the
/// block's end, are its output, without trailing blank lines. Blocks without <c>$ </c> lines (commands to copy, not
/// sessions) are not examples.
/// </summary>
internal static class ShellExamples
{
    private static readonly HashSet<string> ShellLanguages = new(StringComparer.Ordinal) { "sh", "shell", "bash", "console" };

    /// <summary>The examples, and problems that make the document's sessions unreadable (each naming its line).</summary>
    public static (IReadOnlyList<ShellExample> Examples, IReadOnlyList<string> Problems) Parse(string markdown)
    {
        var lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var examples = new List<ShellExample>();
        var problems = new List<string>();
        for (var i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith("```", StringComparison.Ordinal))
            {
                continue;
            }
            var language = lines[i][3..].Trim().Split(' ')[0];
            var start = i + 1;
            var end = start;
            while (end < lines.Length && !lines[end].StartsWith("```", StringComparison.Ordinal))
            {
                end++;
            }
            if (ShellLanguages.Contains(language) && lines[start..end].Any(IsPrompt))
            {
                ParseSession(lines, start, end, examples, problems);
            }
            i = end;
        }
        return (examples, problems);
    }

    private static bool IsPrompt(string line) => line.StartsWith("$ ", StringComparison.Ordinal);

    /// <summary>One fenced block, lines [start, end).</summary>
    private static void ParseSession(string[] lines, int start, int end, List<ShellExample> examples, List<string> problems)
    {
        var i = start;
        while (i < end && !IsPrompt(lines[i]))
        {
            if (lines[i].Trim().Length > 0)
            {
                problems.Add($"line {i + 1}: '{lines[i]}' comes before the block's first '$ ' command, so no test checks it");
            }
            i++;
        }
        while (i < end)
        {
            var first = i;
            var text = lines[i][2..];
            var read = ShellCommand.Read(text);
            i++;
            while (read.IsIncomplete && i < end)
            {
                text += "\n" + lines[i];
                read = ShellCommand.Read(text);
                i++;
            }
            if (read.IsIncomplete)
            {
                problems.Add($"line {first + 1}: the command '{text.Split('\n')[0]}' is not complete at the end of its block (an open quote, a trailing backslash or a here-document without its delimiter line)");
            }
            var output = new List<string>();
            while (i < end && !IsPrompt(lines[i]))
            {
                output.Add(lines[i]);
                i++;
            }
            while (output.Count > 0 && output[^1].Trim().Length == 0)
            {
                output.RemoveAt(output.Count - 1);
            }
            examples.Add(new ShellExample(first + 1, text, read, output));
        }
    }
}
