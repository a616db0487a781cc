using System.Globalization;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>Python's <c>str.format</c>: <c>{}</c>, <c>{0}</c>, <c>{name}</c>, <c>{{</c>/<c>}}</c>, and simple specs (<c>{:.2f}</c>, <c>{:>8}</c>).</summary>
internal static class StringFormat
{
    public static string Format(string format, JinjaArguments args)
    {
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c == '}' )
            {
                if (i + 1 < format.Length && format[i + 1] == '}')
                {
                    sb.Append('}');
                    i++;
                    continue;
                }
                throw new JinjaException("Single '}' encountered in format string");
            }
            if (c != '{')
            {
                sb.Append(c);
                continue;
            }
            if (i + 1 < format.Length && format[i + 1] == '{')
            {
                sb.Append('{');
                i++;
                continue;
            }
            var close = format.IndexOf('}', i);
            if (close < 0)
            {
                throw new JinjaException("Single '{' encountered in format string");
            }
            var field = format[(i + 1)..close];
            i = close;
            string? spec = null;
            var colon = field.IndexOf(':');
            if (colon >= 0)
            {
                spec = field[(colon + 1)..];
                field = field[..colon];
            }
            var conversion = '\0';
            var bang = field.IndexOf('!');
            if (bang >= 0)
            {
                conversion = field.Length > bang + 1 ? field[bang + 1] : '\0';
                field = field[..bang];
            }
            var path = field.Split('.');
            object? value;
            if (path[0].Length == 0)
            {
                value = auto < args.Positional.Count ? args.Positional[auto++] : throw new JinjaException($"Replacement index {auto} out of range for positional args tuple");
            }
            else if (int.TryParse(path[0], NumberStyles.None, CultureInfo.InvariantCulture, out var index))
            {
                value = index < args.Positional.Count ? args.Positional[index] : throw new JinjaException($"Replacement index {index} out of range for positional args tuple");
            }
            else
            {
                value = args.Keyword.TryGetValue(path[0], out var kv) ? kv : throw new JinjaException($"'{path[0]}'");
            }
            foreach (var attribute in path.Skip(1))
            {
                value = JinjaAccess.GetAttribute(value, attribute);
            }
            var text = conversion == 'r' ? PythonFormat.Repr(value) : ApplySpec(value, spec);
            sb.Append(text);
        }
        return sb.ToString();
    }

    private static string ApplySpec(object? value, string? spec)
    {
        if (string.IsNullOrEmpty(spec))
        {
            return PythonFormat.Str(value);
        }
        var i = 0;
        var fill = ' ';
        var align = '\0';
        if (spec.Length >= 2 && spec[1] is '<' or '>' or '^' or '=')
        {
            fill = spec[0];
            align = spec[1];
            i = 2;
        }
        else if (spec[0] is '<' or '>' or '^' or '=')
        {
            align = spec[0];
            i = 1;
        }
        var sign = i < spec.Length && spec[i] is '+' or '-' or ' ' ? spec[i++] : '\0';
        if (i < spec.Length && spec[i] == '0' && align == '\0')
        {
            fill = '0';
            align = '=';
            i++;
        }
        var widthStart = i;
        while (i < spec.Length && char.IsAsciiDigit(spec[i]))
        {
            i++;
        }
        var width = i > widthStart ? (int)JinjaLimits.CheckSize(long.Parse(spec[widthStart..i], CultureInfo.InvariantCulture)) : 0;
        var thousands = i < spec.Length && spec[i] == ',';
        if (thousands)
        {
            i++;
        }
        int? precision = null;
        if (i < spec.Length && spec[i] == '.')
        {
            var start = ++i;
            while (i < spec.Length && char.IsAsciiDigit(spec[i]))
            {
                i++;
            }
            precision = i > start ? (int)Math.Min(long.Parse(spec[start..i], CultureInfo.InvariantCulture), 1000) : 0;
        }
        var type = i < spec.Length ? spec[i] : '\0';
        string text = type switch
        {
            'f' or 'F' => PythonOps.AsDouble(value).ToString((thousands ? "N" : "F") + (precision ?? 6), CultureInfo.InvariantCulture),
            'd' => PythonOps.AsLong(value).ToString(thousands ? "N0" : "D", CultureInfo.InvariantCulture),
            '%' => (PythonOps.AsDouble(value) * 100).ToString("F" + (precision ?? 6), CultureInfo.InvariantCulture) + "%",
            'x' => PythonOps.AsLong(value).ToString("x", CultureInfo.InvariantCulture),
            _ => value is string s && precision is int p && s.Length > p ? s[..p] : PythonFormat.Str(value),
        };
        if (sign == '+' && PythonOps.IsNumber(value) && !text.StartsWith('-'))
        {
            text = "+" + text;
        }
        if (text.Length >= width)
        {
            return text;
        }
        if (align == '\0')
        {
            align = value is string ? '<' : '>';
        }
        var pad = width - text.Length;
        return align switch
        {
            '<' => text + new string(fill, pad),
            '^' => new string(fill, pad / 2) + text + new string(fill, pad - pad / 2),
            '=' when text.StartsWith('-') || text.StartsWith('+') => text[0] + new string(fill, pad) + text[1..],
            _ => new string(fill, pad) + text,
        };
    }
}
