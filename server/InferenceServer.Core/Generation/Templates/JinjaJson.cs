using System.Globalization;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>
/// transformers' tojson: Python's <c>json.dumps(x, ensure_ascii=False, indent=indent, separators=separators,
/// sort_keys=sort_keys)</c>, byte for byte (no HTML escaping, key order kept, Python's float repr).
/// </summary>
internal static class JinjaJson
{
    public static string Serialize(object? value, bool ensureAscii, object? indent, object? separators, bool sortKeys)
    {
        string? indentText = indent switch
        {
            null => null,
            string s => s,
            long or bool => new string(' ', (int)Math.Max(0, JinjaLimits.CheckSize(PythonOps.AsLong(indent)))),
            _ => throw new JinjaException($"indent must be an int or a string, not {PythonFormat.TypeName(indent)}"),
        };
        string itemSeparator = indentText is null ? ", " : ",";
        var keySeparator = ": ";
        if (separators is not null)
        {
            var parts = PythonOps.Iterate(separators);
            if (parts.Count != 2)
            {
                throw new JinjaException($"not enough values to unpack (expected 2, got {parts.Count})");
            }
            itemSeparator = PythonFormat.Str(parts[0]);
            keySeparator = PythonFormat.Str(parts[1]);
        }
        var sb = new StringBuilder();
        new Writer(sb, ensureAscii, indentText, itemSeparator, keySeparator, sortKeys).Write(value, 0);
        return sb.ToString();
    }

    private sealed class Writer(StringBuilder sb, bool ensureAscii, string? indent, string itemSeparator, string keySeparator, bool sortKeys)
    {
        public void Write(object? value, int level)
        {
            if (level > 500)
            {
                throw new JinjaException("maximum recursion depth exceeded while encoding a JSON object");
            }
            switch (value)
            {
                case null:
                    sb.Append("null");
                    break;
                case bool b:
                    sb.Append(b ? "true" : "false");
                    break;
                case long l:
                    sb.Append(l.ToString(CultureInfo.InvariantCulture));
                    break;
                case System.Numerics.BigInteger g:
                    sb.Append(g.ToString(CultureInfo.InvariantCulture));
                    break;
                case double d:
                    sb.Append(Float(d));
                    break;
                case string s:
                    WriteString(s);
                    break;
                case IReadOnlyList<object?> list when list is not JinjaRange:
                    if (list.Count == 0)
                    {
                        sb.Append("[]");
                        break;
                    }
                    sb.Append('[');
                    for (var i = 0; i < list.Count; i++)
                    {
                        sb.Append(i == 0 ? "" : itemSeparator);
                        NewLine(level + 1);
                        Write(list[i], level + 1);
                    }
                    NewLine(level);
                    sb.Append(']');
                    break;
                case JinjaDict dict:
                {
                    if (dict.Count == 0)
                    {
                        sb.Append("{}");
                        break;
                    }
                    IEnumerable<KeyValuePair<object, object?>> entries = dict;
                    if (sortKeys)
                    {
                        var list = dict.ToList();
                        var keyed = list.Select((e, i) => (e, i)).ToList();
                        try
                        {
                            keyed.Sort((x, y) =>
                            {
                                var c = PythonOps.Compare(PythonOps.KeyValue(x.e.Key), PythonOps.KeyValue(y.e.Key), "<");
                                return c != 0 ? c : x.i.CompareTo(y.i);
                            });
                        }
                        catch (InvalidOperationException e) when (e.InnerException is JinjaException inner)
                        {
                            throw inner;
                        }
                        entries = keyed.Select(k => k.e);
                    }
                    sb.Append('{');
                    var first = true;
                    foreach (var (k, v) in entries)
                    {
                        sb.Append(first ? "" : itemSeparator);
                        first = false;
                        NewLine(level + 1);
                        WriteString(KeyString(PythonOps.KeyValue(k)));
                        sb.Append(keySeparator);
                        Write(v, level + 1);
                    }
                    NewLine(level);
                    sb.Append('}');
                    break;
                }
                default:
                    throw new JinjaException($"Object of type {PythonFormat.TypeName(value)} is not JSON serializable");
            }
        }

        private static string KeyString(object? key) => key switch
        {
            string s => s,
            null => "null",
            bool b => b ? "true" : "false",
            long l => l.ToString(CultureInfo.InvariantCulture),
            System.Numerics.BigInteger g => g.ToString(CultureInfo.InvariantCulture),
            double d => Float(d),
            _ => throw new JinjaException($"keys must be str, int, float, bool or None, not {PythonFormat.TypeName(key)}"),
        };

        private static string Float(double d) => double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PythonFormat.Float(d);

        private void NewLine(int level)
        {
            if (indent is null)
            {
                return;
            }
            sb.Append('\n');
            JinjaLimits.CheckSize(sb.Length + (long)indent.Length * level);
            for (var i = 0; i < level; i++)
            {
                sb.Append(indent);
            }
        }

        private void WriteString(string s)
        {
            sb.Append('"');
            foreach (var c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20 || (ensureAscii && c > 0x7e))
                        {
                            sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        }
                        else
                        {
                            sb.Append(c);
                        }
                        break;
                }
            }
            sb.Append('"');
        }
    }
}
