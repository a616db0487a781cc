using System.Globalization;
using System.Numerics;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>Python's <c>str()</c> and <c>repr()</c> of engine values, which is what templates print.</summary>
internal static class PythonFormat
{
    public static string Str(object? value) => value switch
    {
        string s => s,
        null => "None",
        JinjaUndefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        BigInteger g => g.ToString(CultureInfo.InvariantCulture),
        double d => Float(d),
        IReadOnlyList<object?> or JinjaDict or JinjaNamespace or JinjaCallable or LoopObject or JinjaGenerator or JinjaDictView => Repr(value),
        _ => value.ToString() ?? "",
    };

    public static string Repr(object? value)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, value, 0);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? value, int depth)
    {
        if (depth > 200)
        {
            throw new JinjaException("maximum recursion depth exceeded while getting the repr of an object");
        }
        switch (value)
        {
            case string s:
                AppendStringRepr(sb, s);
                break;
            case JinjaRange r:
                sb.Append(r.ToString());
                break;
            case JinjaTuple t:
                sb.Append('(');
                for (var i = 0; i < t.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(", ");
                    }
                    AppendRepr(sb, t[i], depth + 1);
                }
                sb.Append(t.Count == 1 ? ",)" : ")");
                break;
            case IReadOnlyList<object?> list:
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(", ");
                    }
                    AppendRepr(sb, list[i], depth + 1);
                }
                sb.Append(']');
                break;
            case JinjaDict dict:
                sb.Append('{');
                var first = true;
                foreach (var (k, v) in dict)
                {
                    if (!first)
                    {
                        sb.Append(", ");
                    }
                    first = false;
                    AppendRepr(sb, k, depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, v, depth + 1);
                }
                sb.Append('}');
                break;
            case JinjaNamespace ns:
                sb.Append("<Namespace ");
                AppendRepr(sb, ns.Attributes, depth + 1);
                sb.Append('>');
                break;
            case JinjaUndefined:
                sb.Append("Undefined");
                break;
            case JinjaCallable c:
                sb.Append("<function ").Append(c.Name).Append('>');
                break;
            case LoopObject:
                sb.Append("<LoopContext>");
                break;
            case JinjaDictView view:
                sb.Append(view.TypeName).Append('(');
                AppendRepr(sb, view.Items, depth + 1);
                sb.Append(')');
                break;
            case JinjaGenerator g:
                sb.Append('<').Append(g.TypeName).Append(" object>");
                break;
            default:
                sb.Append(Str(value));
                break;
        }
    }

    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        var quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote)
                    {
                        sb.Append('\\').Append(c);
                    }
                    else if (c < 0x20 || c == 0x7f)
                    {
                        sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else if (c >= 0x80 && c <= 0xa0 || c == 0xad)
                    {
                        // Python's str.isprintable() is false for these.
                        sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    }
                    else if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                    {
                        sb.Append(c).Append(s[++i]);
                    }
                    else if (char.IsSurrogate(c))
                    {
                        sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        var category = char.GetUnicodeCategory(c);
                        if (category is UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.OtherNotAssigned
                            || (category == UnicodeCategory.SpaceSeparator && c != ' '))
                        {
                            sb.Append(c <= 0xff ? "\\x" + ((int)c).ToString("x2", CultureInfo.InvariantCulture) : "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        }
                        else
                        {
                            sb.Append(c);
                        }
                    }
                    break;
            }
        }
        sb.Append(quote);
    }

    /// <summary>Python's <c>repr(float)</c>: the shortest round-trip digits, scientific below 1e-4 and from 1e16.</summary>
    public static string Float(double d)
    {
        if (double.IsNaN(d))
        {
            return "nan";
        }
        if (double.IsInfinity(d))
        {
            return d > 0 ? "inf" : "-inf";
        }
        if (d == 0)
        {
            return double.IsNegative(d) ? "-0.0" : "0.0";
        }
        // Shortest round-trip digits: "R" gives them, in either fixed or E notation.
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        var negative = shortest.StartsWith('-');
        if (negative)
        {
            shortest = shortest[1..];
        }
        int exponent;
        string mantissa;
        var e = shortest.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(shortest[(e + 1)..], CultureInfo.InvariantCulture);
            mantissa = shortest[..e];
        }
        else
        {
            exponent = 0;
            mantissa = shortest;
        }
        // digits and decimal point position
        var dot = mantissa.IndexOf('.');
        var intPart = dot >= 0 ? mantissa[..dot] : mantissa;
        var fracPart = dot >= 0 ? mantissa[(dot + 1)..] : "";
        var digits = (intPart + fracPart).TrimStart('0');
        var leadingZeros = (intPart + fracPart).Length - (intPart + fracPart).TrimStart('0').Length;
        var pointPos = intPart.Length + exponent - leadingZeros; // value = 0.digits * 10^pointPos
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
        {
            return negative ? "-0.0" : "0.0";
        }
        var sciExp = pointPos - 1;
        string result;
        if (sciExp < -4 || sciExp >= 16)
        {
            var m = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            result = m + "e" + (sciExp < 0 ? "-" : "+") + Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture);
        }
        else if (pointPos <= 0)
        {
            result = "0." + new string('0', -pointPos) + digits;
        }
        else if (pointPos >= digits.Length)
        {
            result = digits + new string('0', pointPos - digits.Length) + ".0";
        }
        else
        {
            result = digits[..pointPos] + "." + digits[pointPos..];
        }
        return negative ? "-" + result : result;
    }

    public static string TypeName(object? value) => value switch
    {
        null => "NoneType",
        string => "str",
        bool => "bool",
        long or BigInteger => "int",
        double => "float",
        JinjaTuple => "tuple",
        JinjaRange => "range",
        IReadOnlyList<object?> => "list",
        JinjaDict => "dict",
        JinjaUndefined => "Undefined",
        JinjaNamespace => "Namespace",
        JinjaCallable => "function",
        JinjaGenerator g => g.TypeName,
        JinjaDictView v => v.TypeName,
        LoopObject => "LoopContext",
        _ => value.GetType().Name,
    };
}
