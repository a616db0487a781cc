using System.Globalization;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>Python's printf-style <c>"%s and %d" % (a, b)</c> (conversions s, r, d, i, f, x, %).</summary>
internal static class PercentFormat
{
    public static string Format(string format, object? args)
    {
        IReadOnlyList<object?> values = args is JinjaTuple t ? t : [args];
        var dict = args as JinjaDict;
        var sb = new StringBuilder();
        var next = 0;
        for (var i = 0; i < format.Length; i++)
        {
            var c = format[i];
            if (c != '%')
            {
                sb.Append(c);
                continue;
            }
            i++;
            if (i >= format.Length)
            {
                throw new JinjaException("incomplete format");
            }
            object? value;
            string? key = null;
            if (format[i] == '(')
            {
                var close = format.IndexOf(')', i);
                if (close < 0)
                {
                    throw new JinjaException("incomplete format key");
                }
                key = format[(i + 1)..close];
                i = close + 1;
            }
            var flagsStart = i;
            while (i < format.Length && "-+ 0#".Contains(format[i]))
            {
                i++;
            }
            var flags = format[flagsStart..i];
            var widthStart = i;
            while (i < format.Length && char.IsAsciiDigit(format[i]))
            {
                i++;
            }
            var width = i > widthStart ? (int)JinjaLimits.CheckSize(long.Parse(format[widthStart..i], CultureInfo.InvariantCulture)) : 0;
            int? precision = null;
            if (i < format.Length && format[i] == '.')
            {
                i++;
                var precisionStart = i;
                while (i < format.Length && char.IsAsciiDigit(format[i]))
                {
                    i++;
                }
                precision = i > precisionStart ? (int)Math.Min(long.Parse(format[precisionStart..i], CultureInfo.InvariantCulture), 1000) : 0;
            }
            if (i >= format.Length)
            {
                throw new JinjaException("incomplete format");
            }
            var conversion = format[i];
            if (conversion == '%')
            {
                sb.Append('%');
                continue;
            }
            if (key is not null)
            {
                value = dict is not null && dict.TryGetValue(key, out var v) ? v : throw new JinjaException($"'{key}'");
            }
            else
            {
                if (next >= values.Count)
                {
                    throw new JinjaException("not enough arguments for format string");
                }
                value = values[next++];
            }
            var text = conversion switch
            {
                's' => PythonFormat.Str(value),
                'r' or 'a' => PythonFormat.Repr(value),
                'd' or 'i' or 'u' => PythonOps.IsInteger(value)
                    ? PythonOps.AsBig(value).ToString(CultureInfo.InvariantCulture)
                    : PythonOps.IsNumber(value)
                    ? new System.Numerics.BigInteger(Math.Truncate(PythonOps.AsDouble(value))).ToString(CultureInfo.InvariantCulture)
                    : throw new JinjaException($"%{conversion} format: a real number is required, not {PythonFormat.TypeName(value)}"),
                'f' or 'F' => PythonOps.AsDouble(value).ToString("F" + (precision ?? 6), CultureInfo.InvariantCulture),
                'x' => PythonOps.AsLong(value).ToString("x", CultureInfo.InvariantCulture),
                'X' => PythonOps.AsLong(value).ToString("X", CultureInfo.InvariantCulture),
                _ => throw new JinjaException($"unsupported format character '{conversion}'"),
            };
            if (precision is int p && conversion is 's' or 'r' && text.Length > p)
            {
                text = text[..p];
            }
            if (flags.Contains('+') && conversion is 'd' or 'i' or 'f' && !text.StartsWith('-'))
            {
                text = "+" + text;
            }
            if (text.Length < width)
            {
                text = flags.Contains('-') ? text.PadRight(width)
                    : flags.Contains('0') && conversion is not ('s' or 'r') ? (text.StartsWith('-') ? "-" + text[1..].PadLeft(width - 1, '0') : text.PadLeft(width, '0'))
                    : text.PadLeft(width);
            }
            sb.Append(text);
        }
        // Python skips the check when the argument is a mapping or anything indexable but a tuple or str (a list).
        if (next < values.Count && dict is null && !(args is IReadOnlyList<object?> and not JinjaTuple))
        {
            throw new JinjaException("not all arguments converted during string formatting");
        }
        return sb.ToString();
    }
}
