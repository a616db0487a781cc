using System.Globalization;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>
/// The global functions: Jinja2's range, dict, namespace, cycler, joiner, and transformers' raise_exception and
/// strftime_now.
/// </summary>
internal static class JinjaGlobals
{
    public static void Install(JinjaScope scope, TimeProvider clock)
    {
        scope.Set("range", new JinjaCallable("range", (args, _) => Range(args)));
        scope.Set("dict", new JinjaCallable("dict", (args, kwargs) =>
        {
            var dict = new JinjaDict();
            if (args.Count > 0 && args[0] is JinjaDict source)
            {
                foreach (var (k, v) in source)
                {
                    dict[k] = v;
                }
            }
            foreach (var (k, v) in kwargs)
            {
                dict[k] = v;
            }
            return dict;
        }));
        scope.Set("namespace", new JinjaCallable("namespace", (args, kwargs) =>
        {
            var ns = new JinjaNamespace();
            if (args.Count > 0 && args[0] is JinjaDict source)
            {
                foreach (var (k, v) in source)
                {
                    ns.Attributes[k] = v;
                }
            }
            foreach (var (k, v) in kwargs)
            {
                ns.Attributes[k] = v;
            }
            return ns;
        }));
        scope.Set("raise_exception", new JinjaCallable("raise_exception", (args, kwargs) =>
            throw new JinjaRaisedException(PythonFormat.Str(args.Count > 0 ? args[0] : kwargs.GetValueOrDefault("message")))));
        scope.Set("strftime_now", new JinjaCallable("strftime_now", (args, kwargs) =>
            Strftime(clock.GetLocalNow().DateTime, PythonFormat.Str(args.Count > 0 ? args[0] : kwargs.GetValueOrDefault("format")))));
        scope.Set("cycler", new JinjaCallable("cycler", (args, _) =>
        {
            var ns = new JinjaNamespace();
            var position = 0;
            ns.Attributes["next"] = new JinjaCallable("next", (_, _) => args[position++ % args.Count]);
            return ns;
        }));
        scope.Set("joiner", new JinjaCallable("joiner", (args, _) =>
        {
            var separator = args.Count > 0 ? PythonFormat.Str(args[0]) : ", ";
            var used = false;
            return new JinjaCallable("joiner", (_, _) =>
            {
                var result = used ? separator : "";
                used = true;
                return result;
            });
        }));
    }

    private static JinjaRange Range(IReadOnlyList<object?> args)
    {
        long start = 0, stop, step = 1;
        switch (args.Count)
        {
            case 1:
                stop = PythonOps.AsLong(args[0]);
                break;
            case 2:
                start = PythonOps.AsLong(args[0]);
                stop = PythonOps.AsLong(args[1]);
                break;
            case 3:
                start = PythonOps.AsLong(args[0]);
                stop = PythonOps.AsLong(args[1]);
                step = PythonOps.AsLong(args[2]);
                break;
            default:
                throw new JinjaException($"range expected at most 3 arguments, got {args.Count}");
        }
        if (step == 0)
        {
            throw new JinjaException("range() arg 3 must not be zero");
        }
        var count = step > 0 ? Math.Max(0, (stop - start + step - 1) / step) : Math.Max(0, (start - stop - step - 1) / -step);
        if (count > JinjaLimits.MaxRange)
        {
            throw new JinjaException($"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({JinjaLimits.MaxRange}).");
        }
        return new JinjaRange(start, stop, step, (int)count);
    }

    /// <summary>C's strftime (as Python's datetime.strftime on glibc) for the common directives.</summary>
    public static string Strftime(DateTime t, string format)
    {
        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length)
            {
                sb.Append(format[i]);
                continue;
            }
            var c = format[++i];
            var noPad = false;
            if (c == '-' && i + 1 < format.Length)
            {
                noPad = true;
                c = format[++i];
            }
            string Pad(int value, int width) => noPad ? value.ToString(inv) : value.ToString(new string('0', width), inv);
            sb.Append(c switch
            {
                'a' => t.ToString("ddd", inv),
                'A' => t.ToString("dddd", inv),
                'b' or 'h' => t.ToString("MMM", inv),
                'B' => t.ToString("MMMM", inv),
                'd' => Pad(t.Day, 2),
                'e' => noPad ? t.Day.ToString(inv) : t.Day.ToString(inv).PadLeft(2),
                'm' => Pad(t.Month, 2),
                'y' => Pad(t.Year % 100, 2),
                'Y' => t.Year.ToString(inv),
                'H' => Pad(t.Hour, 2),
                'I' => Pad(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'M' => Pad(t.Minute, 2),
                'S' => Pad(t.Second, 2),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => Pad(t.DayOfYear, 3),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", inv),
                'w' => ((int)t.DayOfWeek).ToString(inv),
                'u' => (t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek).ToString(inv),
                'F' => t.ToString("yyyy-MM-dd", inv),
                'T' => t.ToString("HH:mm:ss", inv),
                'D' => t.ToString("MM/dd/yy", inv),
                'R' => t.ToString("HH:mm", inv),
                'c' => t.ToString("ddd MMM ", inv) + t.Day.ToString(inv).PadLeft(2) + t.ToString(" HH:mm:ss yyyy", inv),
                'x' => t.ToString("MM/dd/yy", inv),
                'X' => t.ToString("HH:mm:ss", inv),
                'Z' or 'z' => "",
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                _ => "%" + c,
            });
        }
        return sb.ToString();
    }
}
