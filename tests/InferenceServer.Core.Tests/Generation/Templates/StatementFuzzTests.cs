using System.Text;
using System.Text.Json;

namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>
/// Random templates (fixed seed) nesting if/for/set/namespace/macro/break/continue with random whitespace markers and
/// indentation, rendered by Jinja2 and the engine: scoping and whitespace together, as chat templates combine them.
/// </summary>
public sealed class StatementFuzzTests
{
    private const string Variables = """{"items": [1, 2, 3], "words": ["a", "bb", ""], "d": {"x": 1, "y": [2]}, "flag": true, "off": false, "none_v": null}""";

    private static readonly string[] Texts = ["", "t", "\n", "  ", "\n    ", " x\n", "\n\n  y  \n"];
    private static readonly string[] Conditions = ["flag", "off", "i is defined", "i == 2", "x is defined", "loop is defined and loop.first", "ns.n > 2", "w", "not w", "items | length > 2", "d.y"];
    private static readonly string[] Prints = ["i", "w", "x", "ns.n", "loop.index if loop is defined else '-'", "d.x + 1", "items[-1]", "w | upper", "(x or 0) + 1", "ns.s"];

    private static string Open(Random r, string body)
    {
        var left = r.Next(4) switch { 0 => "-", 1 => "+", _ => "" };
        var right = r.Next(4) switch { 0 => "-", 1 => "+", _ => "" };
        return "{%" + left + " " + body + " " + right + "%}";
    }

    private static string Block(Random r, int depth)
    {
        var sb = new StringBuilder();
        var count = r.Next(1, 4);
        for (var k = 0; k < count; k++)
        {
            sb.Append(Texts[r.Next(Texts.Length)]);
            var roll = depth <= 0 ? r.Next(3) : r.Next(9);
            switch (roll)
            {
                case 0:
                    sb.Append("{{").Append(r.Next(3) == 0 ? "-" : "").Append(' ').Append(Prints[r.Next(Prints.Length)]).Append(' ').Append(r.Next(3) == 0 ? "-" : "").Append("}}");
                    break;
                case 1:
                    sb.Append(Open(r, $"set x = {r.Next(5)}"));
                    break;
                case 2:
                    sb.Append(Open(r, $"set ns.n = ns.n + {r.Next(3)}")).Append(Open(r, "set ns.s = ns.s ~ 'z'"));
                    break;
                case 3 or 4:
                    sb.Append(Open(r, "if " + Conditions[r.Next(Conditions.Length)])).Append(Block(r, depth - 1));
                    if (r.Next(2) == 0)
                    {
                        sb.Append(Open(r, "elif " + Conditions[r.Next(Conditions.Length)])).Append(Block(r, depth - 1));
                    }
                    if (r.Next(2) == 0)
                    {
                        sb.Append(Open(r, "else")).Append(Block(r, depth - 1));
                    }
                    sb.Append(Open(r, "endif"));
                    break;
                case 5 or 6:
                    var loop = r.Next(3) switch { 0 => "for i in items", 1 => "for w in words", _ => "for i in items if i != 2" };
                    sb.Append(Open(r, loop)).Append(Block(r, depth - 1));
                    if (r.Next(3) == 0)
                    {
                        sb.Append(Open(r, "if loop.index == 2")).Append(Open(r, r.Next(2) == 0 ? "break" : "continue")).Append(Open(r, "endif"));
                    }
                    if (r.Next(4) == 0)
                    {
                        sb.Append(Open(r, "else")).Append(Block(r, depth - 1));
                    }
                    sb.Append(Open(r, "endfor"));
                    break;
                case 7:
                    sb.Append(Open(r, "macro m(a, b=1)")).Append(Block(r, depth - 1)).Append("{{ a }}{{ b }}").Append(Open(r, "endmacro")).Append("{{ m(").Append(r.Next(9)).Append(") }}");
                    break;
                default:
                    sb.Append(Open(r, "set blk")).Append(Block(r, depth - 1)).Append(Open(r, "endset")).Append("[{{ blk }}]");
                    break;
            }
        }
        sb.Append(Texts[r.Next(Texts.Length)]);
        return sb.ToString();
    }

    [Fact]
    public void Random_statement_nests_render_as_Jinja2_renders_them()
    {
        var random = new Random(3);
        var cases = Enumerable.Range(0, 800)
            .Select(i => new TemplateCase($"statements {i}", "{% set ns = namespace(n=0, s='') %}" + Block(random, 3) + "|{{ x }}|{{ ns.n }}{{ ns.s }}", Variables))
            .ToList();
        var expected = JinjaReference.AssertAllSame(cases, show: 8);
        Assert.True(expected.Count(r => r.Ok) > cases.Count * 3 / 4);
    }
}
