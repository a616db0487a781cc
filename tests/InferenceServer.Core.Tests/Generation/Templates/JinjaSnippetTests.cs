namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>Jinja2's results for every snippet, computed once (one python process) for the whole class.</summary>
public sealed class JinjaSnippetReference
{
    private readonly Lazy<IReadOnlyList<ReferenceResult>> _results = new(() => JinjaReference.Render(JinjaSnippetCases.All));

    public ReferenceResult this[int index] => _results.Value[index];
}

public sealed class JinjaSnippetTests(JinjaSnippetReference reference) : IClassFixture<JinjaSnippetReference>
{
    [Theory]
    [MemberData(nameof(JinjaSnippetCases.Indices), MemberType = typeof(JinjaSnippetCases))]
    public void The_engine_renders_the_snippet_as_Jinja2_does(int index)
    {
        JinjaReference.AssertSame(JinjaSnippetCases.All[index], reference[index]);
    }
}
