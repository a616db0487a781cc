using System.Text.RegularExpressions;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Docs;

/// <summary>
/// The README is the front door and docs/ holds the rest: every relative link in them names a file that exists, and
/// every #anchor a heading (GitHub's slug) or an explicit &lt;a id&gt; of the file it points to.
/// </summary>
public sealed partial class DocumentationLinkTests
{
    public static TheoryData<string> Documents()
    {
        var data = new TheoryData<string> { "README.md" };
        foreach (var folder in FoldersWithAReadme)
        {
            data.Add(folder + "/README.md");
        }
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Paths.RepositoryRoot, "docs"), "*.md").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetRelativePath(Paths.RepositoryRoot, file).Replace('\\', '/'));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_relative_link_and_anchor_resolves(string document)
    {
        var path = Path.Combine(Paths.RepositoryRoot, document);
        var broken = new List<string>();
        var links = 0;
        foreach (Match link in Link().Matches(File.ReadAllText(path)))
        {
            var target = link.Groups[1].Value;
            if (target.StartsWith("http:", StringComparison.Ordinal) || target.StartsWith("https:", StringComparison.Ordinal) || target.StartsWith("mailto:", StringComparison.Ordinal))
            {
                continue;
            }
            links++;
            var hash = target.IndexOf('#');
            var file = hash < 0 ? target : target[..hash];
            var destination = file.Length == 0 ? path : Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, file));
            if (!File.Exists(destination) && !Directory.Exists(destination))
            {
                broken.Add($"{target}: no such file");
            }
            else if (hash >= 0 && destination.EndsWith(".md", StringComparison.Ordinal) && !Anchors(destination).Contains(target[(hash + 1)..]))
            {
                broken.Add($"{target}: no such anchor");
            }
        }
        Assert.True(broken.Count == 0, $"{document}: {string.Join("; ", broken)}");
        Assert.True(document != "README.md" || links >= 10, "the README links to the docs");
    }

    /// <summary>The top-level folders that say what they are in a README of their own.</summary>
    private static readonly string[] FoldersWithAReadme = ["k8s", "istio", "tests", "perf", "models"];

    [Fact]
    public void Each_top_level_folder_says_what_it_is()
    {
        var missing = FoldersWithAReadme.Where(f => !File.Exists(Path.Combine(Paths.RepositoryRoot, f, "README.md"))).ToArray();
        Assert.True(missing.Length == 0, "no README.md in: " + string.Join(", ", missing));
    }

    [Fact]
    public void The_readme_is_a_front_door()
    {
        var lines = File.ReadAllLines(Path.Combine(Paths.RepositoryRoot, "README.md"));
        Assert.True(lines.Length <= 200, $"README.md has {lines.Length} lines; reference and guides belong in docs/");
    }

    /// <summary>The anchors of a Markdown file: its headings' slugs as GitHub makes them (duplicates numbered) and explicit ids.</summary>
    private static HashSet<string> Anchors(string file)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var fence = false;
        foreach (var line in File.ReadLines(file))
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                fence = !fence;
            }
            if (fence)
            {
                continue;
            }
            if (Heading().Match(line) is { Success: true } heading)
            {
                var slug = Punctuation().Replace(Tag().Replace(heading.Groups[1].Value, "").Trim().ToLowerInvariant(), "").Replace(' ', '-');
                var n = seen.GetValueOrDefault(slug);
                seen[slug] = n + 1;
                anchors.Add(n == 0 ? slug : $"{slug}-{n}");
            }
            foreach (Match id in ExplicitId().Matches(line))
            {
                anchors.Add(id.Groups[1].Value);
            }
        }
        return anchors;
    }

    [GeneratedRegex(@"\]\(([^)\s]+)\)")]
    private static partial Regex Link();

    [GeneratedRegex(@"^#{1,6} (.*)$")]
    private static partial Regex Heading();

    [GeneratedRegex(@"<[^>]+>")]
    private static partial Regex Tag();

    [GeneratedRegex(@"[^\w\- ]")]
    private static partial Regex Punctuation();

    [GeneratedRegex("<a id=\"([^\"]+)\"")]
    private static partial Regex ExplicitId();
}
