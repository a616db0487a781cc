using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Generation.Templates;

/// <summary>The filters (<c>value | name(args)</c>), with Jinja2's semantics and transformers' <c>tojson</c>.</summary>
internal static partial class JinjaFilters
{
    private delegate object? Filter(object? value, JinjaArguments args, JinjaRenderer renderer);

    private static readonly Dictionary<string, Filter> Filters = new(StringComparer.Ordinal)
    {
        ["tojson"] = (v, a, _) =>
        {
            a.Check(4, "ensure_ascii", "indent", "separators", "sort_keys");
            return JinjaJson.Serialize(v, PythonOps.Truthy(a.Get(0, "ensure_ascii", false)), a.Get(1, "indent"), a.Get(2, "separators"), PythonOps.Truthy(a.Get(3, "sort_keys", false)));
        },
        ["length"] = (v, _, _) => PythonOps.Length(v),
        ["count"] = (v, _, _) => PythonOps.Length(v),
        ["first"] = (v, _, _) => v is JinjaUndefined ? v : PythonOps.Iterate(v) is { Count: > 0 } items ? items[0] : new JinjaUndefined("No first item, sequence was empty."),
        ["last"] = (v, _, _) => v is JinjaUndefined ? v
            : v is JinjaGenerator g ? throw new JinjaException($"'{g.TypeName}' object is not reversible")
            : PythonOps.Iterate(v) is { Count: > 0 } items ? items[^1] : new JinjaUndefined("No last item, sequence was empty."),
        ["join"] = (v, a, _) =>
        {
            a.Check(2, "d", "attribute");
            var items = PythonOps.Iterate(v).AsEnumerable();
            if (a.Get(1, "attribute") is { } attribute)
            {
                items = items.Select(AttributeGetter(attribute, null));
            }
            var parts = items.Select(PythonFormat.Str).ToList();
            var separator = PythonFormat.Str(a.Get(0, "d", ""));
            JinjaLimits.CheckSize(parts.Sum(p => (long)p.Length) + (long)separator.Length * Math.Max(0, parts.Count - 1));
            return string.Join(separator, parts);
        },
        ["map"] = Map,
        ["select"] = (v, a, r) => Select(v, a, r, attribute: false, keep: true),
        ["reject"] = (v, a, r) => Select(v, a, r, attribute: false, keep: false),
        ["selectattr"] = (v, a, r) => Select(v, a, r, attribute: true, keep: true),
        ["rejectattr"] = (v, a, r) => Select(v, a, r, attribute: true, keep: false),
        ["list"] = (v, _, _) => PythonOps.Iterate(v).ToList(),
        ["string"] = (v, _, _) => PythonFormat.Str(v),
        ["int"] = ToInt,
        ["float"] = (v, a, _) => ToFloat(v) ?? a.Get(0, "default", 0.0),
        ["lower"] = (v, _, _) => CodePoints.Lower(PythonFormat.Str(v)),
        ["upper"] = (v, _, _) => CodePoints.Upper(PythonFormat.Str(v)),
        ["title"] = (v, _, _) => Title(PythonFormat.Str(v)),
        ["capitalize"] = (v, _, _) => CodePoints.Capitalize(PythonFormat.Str(v)),
        ["replace"] = (v, a, _) =>
        {
            a.Check(3, "old", "new", "count");
            var method = (JinjaCallable)PythonMethods.Get(PythonFormat.Str(v), "replace")!;
            var args = new List<object?> { PythonFormat.Str(a.Required(0, "old")), PythonFormat.Str(a.Required(1, "new")) };
            if (a.Get(2, "count") is { } count)
            {
                args.Add(count);
            }
            return method.Invoke(args, JinjaArguments.NoKeywords);
        },
        ["trim"] = (v, a, _) => PythonMethods.Strip(PythonFormat.Str(v), a.Get(0, "chars") is { } chars ? PythonFormat.Str(chars) : null, true, true),
        ["default"] = Default,
        ["d"] = Default,
        ["items"] = (v, _, _) => v switch
        {
            JinjaUndefined => new List<object?>(),
            JinjaDict d => new JinjaGenerator(d.Select(e => (object?)new JinjaTuple([PythonOps.KeyValue(e.Key), e.Value])).ToList()),
            _ => throw new JinjaException("Can only get item pairs from a mapping."),
        },
        ["dictsort"] = DictSort,
        ["unique"] = Unique,
        ["sort"] = Sort,
        ["reverse"] = (v, _, _) => v switch
        {
            string s => string.Concat(CodePoints.Split(s).Reverse()),
            JinjaTuple t => new JinjaGenerator(t.Reverse().ToList(), "reversed"),
            IReadOnlyList<object?> list => new JinjaGenerator(list.Reverse().ToList(), "list_reverseiterator"),
            JinjaDict d => new JinjaGenerator(d.Keys.Reverse().Select(PythonOps.KeyValue).ToList(), "dict_reversekeyiterator"),
            JinjaDictView view => new JinjaGenerator(view.Items.AsEnumerable().Reverse().ToList(), view.TypeName.Replace("dict_", "dict_reverse") + "iterator"),
            _ => PythonOps.Iterate(v).Reverse().ToList(),
        },
        ["round"] = Round,
        ["abs"] = (v, _, _) => v switch
        {
            long l => l == long.MinValue ? -(System.Numerics.BigInteger)l : (object)Math.Abs(l),
            System.Numerics.BigInteger g => System.Numerics.BigInteger.Abs(g),
            double d => Math.Abs(d),
            bool b => b ? 1L : 0L,
            _ => throw new JinjaException($"bad operand type for abs(): '{PythonFormat.TypeName(v)}'"),
        },
        ["indent"] = Indent,
        ["wordcount"] = (v, _, _) => (long)WordRegex().Count(PythonFormat.Str(v)),
        ["safe"] = (v, _, _) => PythonFormat.Str(v),
        ["escape"] = (v, _, _) => Escape(PythonFormat.Str(v)),
        ["e"] = (v, _, _) => Escape(PythonFormat.Str(v)),
        ["forceescape"] = (v, _, _) => Escape(PythonFormat.Str(v)),
        ["center"] = (v, a, _) => ((JinjaCallable)PythonMethods.Get(PythonFormat.Str(v), "center")!).Invoke([a.Get(0, "width", 80L)], JinjaArguments.NoKeywords),
        ["sum"] = (v, a, _) =>
        {
            var items = PythonOps.Iterate(v).AsEnumerable();
            if (a.Get(0, "attribute") is { } attribute)
            {
                items = items.Select(AttributeGetter(attribute, null));
            }
            return items.Aggregate(a.Get(1, "start", 0L), PythonOps.Add);
        },
        ["min"] = (v, a, _) => MinMax(v, a, min: true),
        ["max"] = (v, a, _) => MinMax(v, a, min: false),
        ["attr"] = (v, a, _) => JinjaAccess.GetAttribute(v, PythonFormat.Str(a.Required(0, "name"))),
        ["format"] = (v, a, _) => PercentFormat.Format(PythonFormat.Str(v), a.Keyword.Count > 0 ? new JinjaDict(a.Keyword) : new JinjaTuple([.. a.Positional])),
        ["batch"] = (v, a, _) =>
        {
            var size = (int)PythonOps.AsLong(a.Required(0, "linecount"));
            if (size <= 0)
            {
                throw new JinjaException("batch size must be positive");
            }
            var items = PythonOps.Iterate(v);
            var result = new List<object?>();
            for (var i = 0; i < items.Count; i += size)
            {
                var chunk = items.Skip(i).Take(size).ToList();
                if (chunk.Count < size && a.Has(1, "fill_with"))
                {
                    while (chunk.Count < size)
                    {
                        chunk.Add(a.Get(1, "fill_with"));
                    }
                }
                result.Add(chunk);
            }
            return result;
        },
    };

    public static bool Exists(string name) => Filters.ContainsKey(name);

    public static object? Apply(string name, object? value, JinjaArguments args, JinjaRenderer renderer)
    {
        if (!Filters.TryGetValue(name, out var filter))
        {
            throw new JinjaException($"No filter named '{name}'.");
        }
        return filter(value, args, renderer);
    }

    private static object? Default(object? value, JinjaArguments args, JinjaRenderer _)
    {
        args.Check(2, "default_value", "boolean");
        var fallback = args.Get(0, "default_value", "");
        if (value is JinjaUndefined || (PythonOps.Truthy(args.Get(1, "boolean", false)) && !PythonOps.Truthy(value)))
        {
            return fallback;
        }
        return value;
    }

    /// <summary>Jinja2's make_attrgetter: "a.b.0" walks items (then attributes); a miss may take <paramref name="fallback"/>.</summary>
    internal static Func<object?, object?> AttributeGetter(object attribute, object? fallback, bool lowercase = false)
    {
        var parts = attribute is string s
            ? s.Split('.').Select(p => long.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? (object)i : p).ToArray()
            : [attribute];
        return item =>
        {
            var value = item;
            foreach (var part in parts)
            {
                value = JinjaAccess.GetItem(value, part);
            }
            if (fallback is not null && value is JinjaUndefined)
            {
                value = fallback;
            }
            if (lowercase && value is string str)
            {
                value = CodePoints.Lower(str);
            }
            return value;
        };
    }

    private static object? Map(object? value, JinjaArguments args, JinjaRenderer renderer)
    {
        // Jinja2 iterates only a truthy value: map over False or 0 is empty rather than an error.
        var items = PythonOps.Truthy(value) ? PythonOps.Iterate(value) : [];
        if (args.Positional.Count == 0 && args.Keyword.TryGetValue("attribute", out var attribute))
        {
            var getter = AttributeGetter(attribute!, args.Keyword.GetValueOrDefault("default"));
            return new JinjaGenerator(items.Select(getter).ToList());
        }
        if (args.Positional.Count == 0)
        {
            throw new JinjaException("map requires a filter argument");
        }
        var name = PythonFormat.Str(args.Positional[0]);
        var rest = new JinjaArguments(args.Positional.Skip(1).ToList(), args.Keyword, name);
        return new JinjaGenerator(items.Select(item => Apply(name, item, rest, renderer)).ToList());
    }

    private static object? Select(object? value, JinjaArguments args, JinjaRenderer renderer, bool attribute, bool keep)
    {
        var items = PythonOps.Truthy(value) ? PythonOps.Iterate(value) : [];
        var offset = 0;
        Func<object?, object?> getter = x => x;
        if (attribute)
        {
            getter = AttributeGetter(args.Positional.Count > 0 ? args.Positional[0]! : throw new JinjaException("Missing parameter for attribute name"), null);
            offset = 1;
        }
        Func<object?, bool> test;
        if (args.Positional.Count > offset)
        {
            var name = PythonFormat.Str(args.Positional[offset]);
            var rest = new JinjaArguments(args.Positional.Skip(offset + 1).ToList(), args.Keyword, name);
            test = x => JinjaTests.Apply(name, x, rest, renderer);
        }
        else
        {
            test = PythonOps.Truthy;
        }
        return new JinjaGenerator(items.Where(item => test(getter(item)) == keep).ToList());
    }

    private static object? ToInt(object? value, JinjaArguments args, JinjaRenderer _)
    {
        args.Check(2, "default", "base");
        var fallback = args.Get(0, "default", 0L);
        var numberBase = PythonOps.AsLong(args.Get(1, "base", 10L));
        switch (value)
        {
            case long or bool or System.Numerics.BigInteger:
                return PythonOps.Normalize(PythonOps.AsBig(value));
            case double d:
                return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
            {
                var t = s.Trim().Replace("_", "");
                if (numberBase != 10)
                {
                    try
                    {
                        var digits = t.ToLowerInvariant();
                        if (numberBase == 16 && digits.StartsWith("0x"))
                        {
                            digits = digits[2..];
                        }
                        else if (numberBase == 8 && digits.StartsWith("0o"))
                        {
                            digits = digits[2..];
                        }
                        else if (numberBase == 2 && digits.StartsWith("0b"))
                        {
                            digits = digits[2..];
                        }
                        return Convert.ToInt64(digits, (int)numberBase);
                    }
                    catch (Exception e) when (e is FormatException or ArgumentException or OverflowException)
                    {
                        return fallback;
                    }
                }
                if (long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l))
                {
                    return l;
                }
                if (t.Length > 0 && t.TrimStart('+', '-').All(char.IsAsciiDigit) && System.Numerics.BigInteger.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var big))
                {
                    return PythonOps.Normalize(big);
                }
                return ToFloat(s) is double f && double.IsFinite(f) ? (long)Math.Truncate(f) : fallback;
            }
            default:
                return fallback;
        }
    }

    private static double? ToFloat(object? value) => value switch
    {
        long or bool or System.Numerics.BigInteger => PythonOps.AsDouble(value),
        double d => d,
        string s => s.Trim().ToLowerInvariant() switch
        {
            "inf" or "+inf" or "infinity" or "+infinity" => double.PositiveInfinity,
            "-inf" or "-infinity" => double.NegativeInfinity,
            "nan" or "+nan" or "-nan" => double.NaN,
            var t when t.Length > 0 && (char.IsAsciiDigit(t[^1]) || t[^1] == '.') && double.TryParse(t.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
            _ => null,
        },
        _ => null,
    };

    /// <summary>Jinja2's title filter: each word (split at whitespace, '-', brackets) capitalized.</summary>
    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var part in TitleSplitRegex().Split(s))
        {
            if (part.Length > 0)
            {
                sb.Append(CodePoints.Upper(part[..1])).Append(CodePoints.Lower(part[1..]));
            }
        }
        return sb.ToString();
    }

    private static object? DictSort(object? value, JinjaArguments args, JinjaRenderer _)
    {
        args.Check(3, "case_sensitive", "by", "reverse");
        var caseSensitive = PythonOps.Truthy(args.Get(0, "case_sensitive", false));
        var by = PythonFormat.Str(args.Get(1, "by", "key"));
        var reverse = PythonOps.Truthy(args.Get(2, "reverse", false));
        if (value is not JinjaDict dict)
        {
            throw new JinjaException("dictsort filter requires a mapping");
        }
        var position = by switch
        {
            "key" => 0,
            "value" => 1,
            _ => throw new JinjaException("You can only sort by either \"key\" or \"value\""),
        };
        var items = dict.Select(e => new JinjaTuple([PythonOps.KeyValue(e.Key), e.Value])).ToList();
        var sorted = StableSort(items, t => SortKey(t[position], caseSensitive), reverse);
        return sorted.Cast<object?>().ToList();
    }

    private static object? SortKey(object? value, bool caseSensitive) => !caseSensitive && value is string s ? CodePoints.Lower(s) : value;

    private static List<T> StableSort<T>(List<T> items, Func<T, object?> key, bool reverse)
    {
        var keyed = items.Select((item, index) => (item, key: key(item), index)).ToList();
        SortOrThrow(keyed, (x, y) =>
        {
            var c = PythonOps.Compare(x.key, y.key, "<");
            if (c == 2)
            {
                c = 0;
            }
            if (reverse)
            {
                c = -c;
            }
            return c != 0 ? c : x.index.CompareTo(y.index);
        });
        return keyed.Select(k => k.item).ToList();
    }

    /// <summary>List.Sort wraps a comparer's exception; a failed comparison is the template's error.</summary>
    private static void SortOrThrow<T>(List<T> list, Comparison<T> comparison)
    {
        try
        {
            list.Sort(comparison);
        }
        catch (InvalidOperationException e) when (e.InnerException is JinjaException inner)
        {
            throw inner;
        }
    }

    private static object? Sort(object? value, JinjaArguments args, JinjaRenderer _)
    {
        args.Check(3, "reverse", "case_sensitive", "attribute");
        var reverse = PythonOps.Truthy(args.Get(0, "reverse", false));
        var caseSensitive = PythonOps.Truthy(args.Get(1, "case_sensitive", false));
        var attribute = args.Get(2, "attribute");
        var items = PythonOps.Iterate(value).ToList();
        Func<object?, object?> key;
        if (attribute is string names && names.Contains(','))
        {
            var getters = names.Split(',').Select(n => AttributeGetter(n.Trim(), null, lowercase: !caseSensitive)).ToList();
            key = item => new JinjaTuple(getters.Select(g => g(item)).ToArray());
        }
        else if (attribute is not null)
        {
            key = AttributeGetter(attribute, null, lowercase: !caseSensitive);
        }
        else
        {
            key = item => SortKey(item, caseSensitive);
        }
        return StableSort(items, key, reverse);
    }

    private static object? Unique(object? value, JinjaArguments args, JinjaRenderer _)
    {
        args.Check(2, "case_sensitive", "attribute");
        var caseSensitive = PythonOps.Truthy(args.Get(0, "case_sensitive", false));
        var attribute = args.Get(1, "attribute");
        var getter = attribute is null ? (Func<object?, object?>)(x => SortKey(x, caseSensitive)) : AttributeGetter(attribute, null, lowercase: !caseSensitive);
        var seen = new HashSet<object>(PythonKeyComparer.Instance);
        var result = new List<object?>();
        foreach (var item in PythonOps.Iterate(value))
        {
            if (seen.Add(PythonOps.ToKey(getter(item))))
            {
                result.Add(item);
            }
        }
        return new JinjaGenerator(result);
    }

    private static object? Round(object? value, JinjaArguments args, JinjaRenderer _)
    {
        args.Check(2, "precision", "method");
        var precision = (int)PythonOps.AsLong(args.Get(0, "precision", 0L));
        var method = PythonFormat.Str(args.Get(1, "method", "common"));
        if (method == "common")
        {
            if (PythonOps.IsInteger(value))
            {
                return PythonOps.AsLong(value);
            }
            return Math.Round(PythonOps.AsDouble(value), Math.Clamp(precision, 0, 15), MidpointRounding.ToEven);
        }
        var factor = Math.Pow(10, precision);
        var x = PythonOps.AsDouble(value) * factor;
        return method switch
        {
            "ceil" => Math.Ceiling(x) / factor,
            "floor" => Math.Floor(x) / factor,
            _ => throw new JinjaException("method must be common, ceil or floor"),
        };
    }

    private static object? Indent(object? value, JinjaArguments args, JinjaRenderer _)
    {
        args.Check(3, "width", "first", "blank");
        var width = args.Get(0, "width", 4L);
        var indentation = width is string w ? w : new string(' ', (int)Math.Max(0, JinjaLimits.CheckSize(PythonOps.AsLong(width))));
        var first = PythonOps.Truthy(args.Get(1, "first", false));
        var blank = PythonOps.Truthy(args.Get(2, "blank", false));
        if (value is not string text)
        {
            throw value is JinjaUndefined u ? u.Fail() : new JinjaException($"unsupported operand type(s) for +=: '{PythonFormat.TypeName(value)}' and 'str'");
        }
        var s = text + "\n";
        var lines = ((List<object?>)((JinjaCallable)PythonMethods.Get(s, "splitlines")!).Invoke([], JinjaArguments.NoKeywords)!).Cast<string>().ToList();
        string result;
        if (blank)
        {
            result = string.Join("\n" + indentation, lines);
        }
        else
        {
            result = lines[0];
            if (lines.Count > 1)
            {
                result += "\n" + string.Join("\n", lines.Skip(1).Select(line => line.Length > 0 ? indentation + line : line));
            }
        }
        return first ? indentation + result : result;
    }

    private static string Escape(string s) => JinjaRenderer.Escape(s);

    private static object? MinMax(object? value, JinjaArguments args, bool min)
    {
        args.Check(2, "case_sensitive", "attribute");
        var caseSensitive = PythonOps.Truthy(args.Get(0, "case_sensitive", false));
        var attribute = args.Get(1, "attribute");
        var key = attribute is null ? (Func<object?, object?>)(x => SortKey(x, caseSensitive)) : AttributeGetter(attribute, null, lowercase: !caseSensitive);
        var items = PythonOps.Iterate(value);
        if (items.Count == 0)
        {
            return new JinjaUndefined($"No aggregated item, sequence was empty.");
        }
        var best = items[0];
        foreach (var item in items.Skip(1))
        {
            var c = PythonOps.Compare(key(item), key(best), "<");
            if (min ? c == -1 : c == 1)
            {
                best = item;
            }
        }
        return best;
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex TitleSplitRegex();

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();
}
