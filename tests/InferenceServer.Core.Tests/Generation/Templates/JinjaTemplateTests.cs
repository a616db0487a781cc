using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Generation.Templates;

namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>The engine's public contract: errors, limits, and the .NET values callers pass.</summary>
public sealed class JinjaTemplateTests
{
    private static string Render(string template, IReadOnlyDictionary<string, object?>? variables = null) =>
        JinjaTemplate.Parse(template).Render(variables ?? new Dictionary<string, object?>());

    [Fact]
    public void Raise_exception_surfaces_its_message_exactly()
    {
        var e = Assert.Throws<JinjaRaisedException>(() => Render("{% if true %}\n{{ raise_exception('Roles must alternate: ' ~ 3) }}{% endif %}"));
        Assert.Equal("Roles must alternate: 3", e.Message);
    }

    [Fact]
    public void A_syntax_error_names_its_line()
    {
        var e = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("line one\n{% if x %}\nline three\n{{ 1 + }}"));
        Assert.Equal(4, e.Line);
        Assert.Contains("line 4", e.Message);
        var unclosed = Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("a\n{% for m in messages %}\nb"));
        Assert.Contains("endfor", unclosed.Message);
    }

    [Fact]
    public void A_runtime_error_names_its_line_and_is_a_JinjaException()
    {
        var e = Assert.Throws<JinjaException>(() => Render("ok\n\n{{ missing.attribute }}"));
        Assert.Equal(3, e.Line);
        Assert.Contains("'missing' is undefined", e.Message);
        Assert.IsNotType<JinjaRaisedException>(e);
    }

    [Fact]
    public void The_immutable_sandbox_refuses_mutation()
    {
        var variables = new Dictionary<string, object?> { ["l"] = new List<object?> { 1L } };
        var e = Assert.Throws<JinjaException>(() => Render("{{ l.append(2) }}", variables));
        Assert.Contains("unsafe", e.Message);
        Assert.Single((List<object?>)variables["l"]!);
    }

    [Fact]
    public void Output_and_loops_are_capped()
    {
        Assert.Throws<JinjaException>(() => Render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"));
        Assert.Throws<JinjaException>(() => Render("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}"));
        Assert.Throws<JinjaException>(() => Render("{{ 'x' * 100000000 }}"));
        Assert.Throws<JinjaException>(() => Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"));
    }

    [Theory]
    [InlineData("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}")]
    [InlineData("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}")]
    [InlineData("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}")]
    [InlineData("{{ 'a'.center(1000000000000) }}")]
    [InlineData("{{ '{:>99999999999}'.format(1) }}")]
    [InlineData("{{ '%99999999999s' % 'a' }}")]
    [InlineData("{{ 'a\nb' | indent(10000000000) }}")]
    [InlineData("{{ [[[1]]] | tojson(indent=100000000) }}")]
    [InlineData("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s.replace('a', ns.s) %}{% endfor %}")]
    public void Values_cannot_grow_past_the_size_limit(string template)
    {
        Assert.Throws<JinjaException>(() => Render(template));
    }

    [Fact]
    public void Deep_nesting_fails_cleanly_instead_of_overflowing_the_stack()
    {
        var deep = new string('(', 100_000) + "1" + new string(')', 100_000);
        Assert.Throws<JinjaException>(() => JinjaTemplate.Parse("{{ " + deep + " }}"));
        var nestedIfs = string.Concat(Enumerable.Repeat("{% if true %}", 50_000)) + string.Concat(Enumerable.Repeat("{% endif %}", 50_000));
        Assert.Throws<JinjaException>(() => JinjaTemplate.Parse(nestedIfs));
    }

    [Fact]
    public void Plain_dotnet_values_behave_as_Python_values()
    {
        var variables = new Dictionary<string, object?>
        {
            ["i"] = 3,
            ["f"] = 0.5f,
            ["m"] = 2.5m,
            ["b"] = true,
            ["n"] = null,
            ["arr"] = new object?[] { 1, "a", null },
            ["dict"] = new Dictionary<string, object?> { ["k"] = new List<object?> { 1, 2 } },
            ["ordered"] = new JinjaDict().Add("z", 1).Add("a", 2),
            ["node"] = JsonNode.Parse("""{"x": [1, 2.0, "é"]}"""),
        };
        Assert.Equal(
            "4 0.5 2.5 True None [1, 'a', None] {'k': [1, 2]} {'z': 1, 'a': 2} {\"z\": 1, \"a\": 2} [1, 2.0, 'é'] 3",
            Render("{{ i + 1 }} {{ f }} {{ m }} {{ b }} {{ n }} {{ arr }} {{ dict }} {{ ordered }} {{ ordered | tojson }} {{ node.x }} {{ arr | length + dict.k | length - 2 }}", variables));
    }

    [Fact]
    public void FromJson_gives_what_json_loads_gives()
    {
        using var doc = JsonDocument.Parse("""{"b": 1, "a": 1.0, "c": [true, null, "s", 1e2, -0, 12345678901234567890]}""");
        var value = JinjaValue.FromJson(doc.RootElement);
        var dict = Assert.IsType<JinjaDict>(value);
        Assert.Equal(["b", "a", "c"], dict.Keys.Cast<string>());
        Assert.Equal(1L, dict["b"]);
        Assert.Equal(1.0, dict["a"]);
        Assert.Equal("{'b': 1, 'a': 1.0, 'c': [True, None, 's', 100.0, 0, 12345678901234567890]}",
            JinjaTemplate.Parse("{{ v }}").Render(new Dictionary<string, object?> { ["v"] = value }));
    }

    [Fact]
    public void A_parsed_template_renders_concurrently()
    {
        var template = JinjaTemplate.Parse("{% set ns = namespace(s=0) %}{% for i in range(n) %}{% set ns.s = ns.s + i %}{% endfor %}{{ ns.s }}");
        var results = Enumerable.Range(0, 64).AsParallel().Select(n => (n, template.Render(new Dictionary<string, object?> { ["n"] = n }))).ToList();
        Assert.All(results, r => Assert.Equal((r.n * (r.n - 1) / 2).ToString(), r.Item2));
    }

    [Fact]
    public void Strftime_now_reads_the_given_clock()
    {
        var clock = new FixedClock(new DateTime(2025, 1, 2, 3, 4, 5));
        Assert.Equal("02 Jan 2025 03:04:05", JinjaTemplate.Parse("{{ strftime_now('%d %b %Y %H:%M:%S') }}").Render(new Dictionary<string, object?>(), clock));
    }
}
