using System.Collections;
using System.Globalization;
using System.Text.Json;

namespace InferenceServer.Generation.Templates;

/// <summary>
/// Converts caller values into the engine's Python-like values: None (null), bool, int (long), float (double),
/// str, list (<see cref="List{T}"/>), dict (<see cref="JinjaDict"/>).
/// </summary>
public static class JinjaValue
{
    /// <summary>A JSON value as Python's json.loads gives it: objects keep key order, "1" is an int, "1.0" a float.</summary>
    public static object? FromJson(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
            {
                var dict = new JinjaDict();
                foreach (var p in e.EnumerateObject())
                {
                    dict[p.Name] = FromJson(p.Value);
                }
                return dict;
            }
            case JsonValueKind.Array:
            {
                var list = new List<object?>(e.GetArrayLength());
                foreach (var item in e.EnumerateArray())
                {
                    list.Add(FromJson(item));
                }
                return list;
            }
            case JsonValueKind.String:
                return e.GetString();
            case JsonValueKind.Number:
            {
                var raw = e.GetRawText();
                if (raw.AsSpan().IndexOfAny(".eE") < 0 && long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                {
                    return l;
                }
                if (raw.AsSpan().IndexOfAny(".eE") < 0 && System.Numerics.BigInteger.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big))
                {
                    return big;
                }
                return e.TryGetDouble(out var d) ? d : double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
            }
            case JsonValueKind.True:
                return true;
            case JsonValueKind.False:
                return false;
            default:
                return null;
        }
    }

    /// <summary>A .NET value as an engine value (deeply): numbers widen, dictionaries and sequences become dicts and lists.</summary>
    public static object? FromDotNet(object? value) => value switch
    {
        null or string or bool or long or double => value,
        int or short or byte or sbyte or uint or ushort => Convert.ToInt64(value, CultureInfo.InvariantCulture),
        ulong u => u <= long.MaxValue ? (long)u : (System.Numerics.BigInteger)u,
        System.Numerics.BigInteger g => PythonOps.Normalize(g),
        float f => (double)f,
        decimal m => (double)m,
        char c => c.ToString(),
        JsonElement e => FromJson(e),
        System.Text.Json.Nodes.JsonNode node => FromJson(JsonSerializer.SerializeToElement(node)),
        JinjaDict d => Copy(d),
        IEnumerable<KeyValuePair<string, object?>> pairs => new JinjaDict(pairs.Select(p => new KeyValuePair<string, object?>(p.Key, FromDotNet(p.Value)))),
        IDictionary dictionary => FromDictionary(dictionary),
        IEnumerable sequence => sequence.Cast<object?>().Select(FromDotNet).ToList(),
        _ => value,
    };

    private static JinjaDict Copy(JinjaDict source)
    {
        var dict = new JinjaDict();
        foreach (var (k, v) in source)
        {
            dict[k] = FromDotNet(v);
        }
        return dict;
    }

    private static JinjaDict FromDictionary(IDictionary dictionary)
    {
        var dict = new JinjaDict();
        foreach (DictionaryEntry entry in dictionary)
        {
            dict[PythonOps.ToKey(FromDotNet(entry.Key))] = FromDotNet(entry.Value);
        }
        return dict;
    }
}
