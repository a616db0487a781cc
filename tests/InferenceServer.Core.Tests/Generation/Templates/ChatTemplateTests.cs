using System.Diagnostics;
using System.Text.Json;
using InferenceServer.Generation.Templates;
using Xunit.Abstractions;

namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>Jinja2's renderings of every chat template case, computed once (one python process).</summary>
public sealed class ChatTemplateReference
{
    private readonly Lazy<Dictionary<string, ReferenceResult>> _results = new(() =>
    {
        var results = JinjaReference.Render(ChatTemplateCases.All);
        return ChatTemplateCases.All.Select((c, i) => (c.Name, results[i])).ToDictionary(x => x.Name, x => x.Item2);
    });

    public ReferenceResult this[string name] => _results.Value[name];
}

public sealed class ChatTemplateTests(ChatTemplateReference reference, ITestOutputHelper output) : IClassFixture<ChatTemplateReference>
{
    [Theory]
    [MemberData(nameof(ChatTemplateCases.Names), MemberType = typeof(ChatTemplateCases))]
    public void The_engine_renders_the_chat_template_as_transformers_does(string name)
    {
        JinjaReference.AssertSame(ChatTemplateCases.All.Single(c => c.Name == name), reference[name]);
    }

    [Fact]
    public void The_real_templates_render_real_conversations_without_errors()
    {
        // Guards the comparison itself: the common cases must render (an engine that always threw would match
        // every Jinja2 error case, so count the successes).
        var rendered = ChatTemplateCases.All.Count(c => reference[c.Name].Ok);
        Assert.True(rendered > ChatTemplateCases.All.Count / 2, $"only {rendered} of {ChatTemplateCases.All.Count} cases rendered in Jinja2");
        foreach (var family in new[] { "qwen3", "llama3_1" })
        {
            Assert.Contains(ChatTemplateCases.All, c => c.Name.StartsWith(family + " / tool_call_dict", StringComparison.Ordinal) && reference[c.Name].Ok);
        }
    }

    [Fact]
    public void Rendering_Qwen3_for_a_20_message_conversation_takes_well_under_a_few_milliseconds()
    {
        // A measurement, reported in the test output; not a timed assertion.
        var template = JinjaTemplate.Parse(ChatTemplateCases.Templates["qwen3"].Template);
        var c = ChatTemplateCases.All.Single(c => c.Name == "qwen3 / long / prompt");
        using var doc = JsonDocument.Parse(c.VariablesJson);
        var variables = doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => JinjaValue.FromJson(p.Value));
        for (var i = 0; i < 50; i++)
        {
            template.Render(variables);
        }
        const int runs = 500;
        var watch = Stopwatch.StartNew();
        string last = "";
        for (var i = 0; i < runs; i++)
        {
            last = template.Render(variables);
        }
        watch.Stop();
        output.WriteLine($"Qwen 3 template, 20 messages: {watch.Elapsed.TotalMilliseconds * 1000 / runs:F1} µs per render ({last.Length} chars)");
        Assert.Equal(reference[c.Name].Output, last);
    }
}
