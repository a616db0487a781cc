using System.Text.RegularExpressions;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Docs;

/// <summary>
/// The README names every package CI installs for the tests: a fresh machine prepared from the README alone runs
/// the same suite as CI.
/// </summary>
public sealed partial class PrerequisiteTests
{
    [Fact]
    public void The_readme_names_every_package_ci_installs()
    {
        var ci = File.ReadAllText(Path.Combine(Paths.RepositoryRoot, ".ci", "run"));
        var packages = AptInstall().Matches(ci)
            .SelectMany(m => m.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(p => !p.StartsWith('-') && !p.StartsWith('>'))
            .Distinct()
            .ToArray();
        Assert.Contains("prometheus", packages);
        var readme = File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "README.md"));
        var prerequisites = readme[readme.IndexOf("**Prerequisites.**", StringComparison.Ordinal)..];
        prerequisites = prerequisites[..prerequisites.IndexOf("\n\n", StringComparison.Ordinal)];
        var missing = packages.Where(p => !Regex.IsMatch(prerequisites, $@"(?<![\w-]){Regex.Escape(p)}(?![\w-])")).ToArray();
        Assert.True(missing.Length == 0, "the README's prerequisites do not name: " + string.Join(", ", missing));
    }

    [GeneratedRegex(@"apt-get install -y -qq ([^\n]+?)(?:>|\n)")]
    private static partial Regex AptInstall();
}
