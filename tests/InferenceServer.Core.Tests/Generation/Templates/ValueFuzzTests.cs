using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>
/// Random strings through the string methods and filters, and random JSON values through printing and tojson
/// (fixed seeds), compared with Jinja2.
/// </summary>
public sealed class ValueFuzzTests
{
    private static readonly string[] Alphabet = ["a", "b", "B", "Z", " ", "  ", "\n", "\t", "\r\n", ",", ".", "-", "_", "'", "\"", "\\", "é", "ß", "😀", "日", "\u00a0", "\u2028", "1", "0", "x1", "<think>", "</think>", "\u0001"];

    private static readonly string[] Operations =
    [
        "s.strip()", "s.lstrip()", "s.rstrip()", "s.strip(' a')", "s.lstrip('\\n')", "s.rstrip('.-')", "s.split()", "s.split(' ')", "s.split(',')", "s.split(None, 1)", "s.split(',', 1)",
        "s.rsplit()", "s.rsplit(' ', 1)", "s.rsplit(None, 1)", "s.splitlines()", "s.splitlines(true)", "s.title()", "s.capitalize()", "s.upper()", "s.lower()", "s.find('a')", "s.rfind('a')",
        "s.count('a')", "s.count('')", "s.replace('a', 'A')", "s.replace('', '|')", "s.replace(' ', '', 1)", "s.startswith('a')", "s.endswith((' ', '\\n'))", "s.partition(',')", "s.rpartition(' ')",
        "s.center(12, '*')", "s.ljust(9)", "s.rjust(9, '0')", "s.zfill(6)", "s.isdigit()", "s.isalpha()", "s.isspace()", "s.islower()", "s.isupper()", "s.removeprefix('a')", "s.removesuffix(' ')",
        "s | trim", "s | title", "s | capitalize", "s | upper", "s | lower", "s | length", "s | list", "s | reverse", "s | wordcount", "s | indent(2)", "s | indent(2, true, true)", "s | replace('a', 'b')",
        "s | tojson", "s | tojson(ensure_ascii=true)", "[s]", "(s,)", "{s: 1}", "s[1:]", "s[::-1]", "s[-3:]", "s[1::2]", "s | first", "s | last", "s | int", "s | float", "s | sort | join",
        "s | unique | join", "s | batch(3) | list", "s ~ 1", "s * 2", "s + '!'", "s in 'a b'", "'a' in s", "s == s.strip()", "s < 'b'", "s | string", "s.split('</think>')[-1].lstrip('\\n')", "(s | trim)[:5]",
        "'%s|' % s", "'{}|{}'.format(s, 1)", "s | center(10)",
    ];

    private static string RandomString(Random r)
    {
        var sb = new StringBuilder();
        var n = r.Next(0, 8);
        for (var i = 0; i < n; i++)
        {
            sb.Append(Alphabet[r.Next(Alphabet.Length)]);
        }
        return sb.ToString();
    }

    private static void Compare(List<TemplateCase> cases) => JinjaReference.AssertAllSame(cases, show: 12);

    [Fact]
    public void Random_strings_through_methods_and_filters_match_Jinja2()
    {
        var random = new Random(5);
        var cases = new List<TemplateCase>();
        for (var i = 0; i < 2500; i++)
        {
            var variables = new JsonObject { ["s"] = RandomString(random) };
            cases.Add(new TemplateCase($"string {i}", "{{ " + Operations[random.Next(Operations.Length)] + " }}", variables.ToJsonString()));
        }
        Compare(cases);
    }

    private static JsonNode? RandomJson(Random r, int depth)
    {
        var roll = depth <= 0 ? r.Next(6) : r.Next(9);
        return roll switch
        {
            0 => JsonValue.Create(RandomString(r)),
            1 => JsonValue.Create(r.Next(-1000, 1000)),
            2 => JsonNode.Parse(new[] { "0.1", "1.0", "-2.5", "1e-7", "1.5e300", "123456789.123", "3.0e16", "0.000123", "-0.0", "9007199254740993", "1e2" }[r.Next(11)]),
            3 => JsonValue.Create(r.Next(2) == 0),
            4 => null,
            5 => JsonValue.Create(new[] { "", "a", "tool_call", "é😀", "line\nbreak" }[r.Next(5)]),
            6 or 7 => new JsonObject(Enumerable.Range(0, r.Next(0, 4)).Select(k => new KeyValuePair<string, JsonNode?>(new[] { "name", "b", "A", "arguments", "é", "z", "1" }[r.Next(7)] + k, RandomJson(r, depth - 1)))),
            _ => new JsonArray(Enumerable.Range(0, r.Next(0, 4)).Select(_ => RandomJson(r, depth - 1)).ToArray()),
        };
    }

    private static readonly string[] JsonOperations =
    [
        "v", "v | tojson", "v | tojson(indent=2)", "v | tojson(indent=4)", "v | tojson(sort_keys=true)", "v | tojson(separators=(',', ':'))", "v | tojson(indent=1, sort_keys=true)", "v | tojson(ensure_ascii=true)",
        "v | string", "v | length", "v | list", "v is mapping", "v is sequence", "v | first", "[v, v]", "v | default('d')", "v | items | list if v is mapping else v", "v | dictsort if v is mapping else v",
    ];

    [Fact]
    public void Random_JSON_values_print_and_serialize_as_Jinja2_does()
    {
        var random = new Random(9);
        var cases = new List<TemplateCase>();
        for (var i = 0; i < 1500; i++)
        {
            var variables = new JsonObject { ["v"] = RandomJson(random, 3) };
            cases.Add(new TemplateCase($"json {i}", "{{ " + JsonOperations[random.Next(JsonOperations.Length)] + " }}", variables.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping })));
        }
        Compare(cases);
    }
}
