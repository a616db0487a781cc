using System.Text.Json;

namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>
/// Whitespace control is where chat template renderings drift apart, so this compares the engine with Jinja2 over
/// generated combinations: text before, a tag, text between, a tag, text after, with every marker (-, +),
/// trim_blocks and lstrip_blocks (a fixed-seed sample of the combinations, the same on every run).
/// </summary>
public sealed class WhitespaceCombinationTests
{
    private static readonly string[] Texts = ["", "  ", "\n", "a\n  ", " \n\t ", "\n\n", "x\n"];

    private static readonly string[] SingleTags =
    [
        "{{ s }}", "{{- s }}", "{{ s -}}", "{{- s -}}", "{{+ s }}",
        "{# c #}", "{#- c #}", "{# c -#}", "{# c +#}", "{#- c -#}",
        "{% set x = 1 %}", "{%- set x = 1 %}", "{%+ set x = 1 %}", "{% set x = 1 -%}", "{% set x = 1 +%}", "{%+ set x = 1 -%}",
        "{% raw %} r {% endraw %}", "{%- raw -%}\n r \n{%- endraw -%}", "{%+ raw %}\n r\n  {% endraw +%}",
    ];

    private static readonly string[] Openers = ["{% if t %}", "{%- if t %}", "{%+ if t %}", "{% if t -%}", "{%- if t -%}", "{% if t +%}", "{% for i in [1, 2] %}", "{%- for i in [1, 2] -%}"];

    private static readonly string[] Closers = ["{% {0} %}", "{%- {0} %}", "{%+ {0} %}", "{% {0} -%}", "{%- {0} -%}", "{% {0} +%}"];

    private static List<TemplateCase> Cases()
    {
        var random = new Random(20240723);
        string Text() => Texts[random.Next(Texts.Length)];
        var cases = new List<TemplateCase>();
        for (var i = 0; i < 1500; i++)
        {
            var template = Text() + SingleTags[random.Next(SingleTags.Length)] + Text() + SingleTags[random.Next(SingleTags.Length)] + Text();
            cases.Add(new TemplateCase($"tags {i}", template, """{"s": "S", "t": true}"""));
        }
        for (var i = 0; i < 1500; i++)
        {
            var opener = Openers[random.Next(Openers.Length)];
            var end = opener.Contains("for") ? "endfor" : "endif";
            var closer = Closers[random.Next(Closers.Length)].Replace("{0}", end);
            var template = Text() + opener + Text() + SingleTags[random.Next(SingleTags.Length)] + Text() + closer + Text();
            cases.Add(new TemplateCase($"blocks {i}", template, """{"s": "S", "t": true}"""));
        }
        return cases;
    }

    [Fact]
    public void Whitespace_control_matches_Jinja2_in_every_sampled_combination()
    {
        var cases = Cases();
        var expected = JinjaReference.AssertAllSame(cases, show: 30);
        Assert.True(expected.Count(r => r.Ok) > cases.Count * 9 / 10);
    }
}
