using System.Globalization;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>
/// The Python methods templates call on strings, dicts and lists. Mutating methods (list.append, dict.update, ...)
/// are refused as transformers' ImmutableSandboxedEnvironment refuses them.
/// </summary>
internal static class PythonMethods
{
    private static readonly HashSet<string> UnsafeListMethods = ["append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"];
    private static readonly HashSet<string> UnsafeDictMethods = ["pop", "popitem", "setdefault", "update", "clear"];

    /// <summary>The bound method <paramref name="name"/> of <paramref name="target"/>, or null when it has none.</summary>
    public static object? Get(object? target, string name)
    {
        switch (target)
        {
            case string s:
                return StringMethod(s, name);
            case JinjaDict d:
                if (UnsafeDictMethods.Contains(name))
                {
                    return Unsafe(name, "dict");
                }
                return DictMethod(d, name);
            case JinjaTuple t:
                return ListMethod(t, name);
            case IReadOnlyList<object?> list:
                if (UnsafeListMethods.Contains(name))
                {
                    return Unsafe(name, "list");
                }
                return ListMethod(list, name);
            default:
                return null;
        }
    }

    private static JinjaUndefined Unsafe(string name, string type) => new($"access to attribute '{name}' of '{type}' object is unsafe.");

    private static JinjaCallable Method(string name, Func<JinjaArguments, object?> body) =>
        new(name, (args, kwargs) => body(new JinjaArguments(args, kwargs, name)));

    private static JinjaCallable? DictMethod(JinjaDict d, string name) => name switch
    {
        "items" => Method(name, a => { a.Check(0); return new JinjaDictView("dict_items", d.Select(e => (object?)new JinjaTuple([PythonOps.KeyValue(e.Key), e.Value])).ToList()); }),
        "keys" => Method(name, a => { a.Check(0); return new JinjaDictView("dict_keys", d.Keys.Select(PythonOps.KeyValue).ToList()); }),
        "values" => Method(name, a => { a.Check(0); return new JinjaDictView("dict_values", d.Values.ToList()); }),
        "get" => Method(name, a =>
        {
            a.Check(2);
            var key = a.Required(0, "key");
            return PythonOps.IsHashable(key) && d.TryGetValue(PythonOps.ToKey(key), out var v) ? v : a.Get(1, "default");
        }),
        "copy" => Method(name, a => { a.Check(0); var copy = new JinjaDict(); foreach (var (k, v) in d) { copy[k] = v; } return copy; }),
        _ => null,
    };

    private static JinjaCallable? ListMethod(IReadOnlyList<object?> list, string name) => name switch
    {
        "index" => Method(name, a =>
        {
            var item = a.Required(0, "value");
            for (var i = 0; i < list.Count; i++)
            {
                if (PythonOps.PyEquals(list[i], item))
                {
                    return (long)i;
                }
            }
            throw new JinjaException($"{PythonFormat.Repr(item)} is not in list");
        }),
        "count" => Method(name, a => (long)list.Count(x => PythonOps.PyEquals(x, a.Required(0, "value")))),
        "copy" when list is not JinjaTuple => Method(name, _ => list.ToList()),
        _ => null,
    };

    private static string Str(object? v, string method) =>
        v as string ?? throw new JinjaException($"{method}() argument must be str, not {PythonFormat.TypeName(v)}");

    private static string? OptionalStr(object? v, string method) => v is null ? null : Str(v, method);

    private static JinjaCallable? StringMethod(string s, string name) => name switch
    {
        "strip" => Method(name, a => Strip(s, OptionalStr(a.Check(1).Get(0, "chars"), name), true, true)),
        "lstrip" => Method(name, a => Strip(s, OptionalStr(a.Check(1).Get(0, "chars"), name), true, false)),
        "rstrip" => Method(name, a => Strip(s, OptionalStr(a.Check(1).Get(0, "chars"), name), false, true)),
        "split" => Method(name, a => Split(s, OptionalStr(a.Check(2, "sep", "maxsplit").Get(0, "sep"), name), MaxSplit(a))),
        "rsplit" => Method(name, a => RSplit(s, OptionalStr(a.Check(2, "sep", "maxsplit").Get(0, "sep"), name), MaxSplit(a))),
        "splitlines" => Method(name, a => SplitLines(s, PythonOps.Truthy(a.Check(1, "keepends").Get(0, "keepends", false)))),
        "startswith" => Method(name, a => Affix(s, a, name, (str, p) => str.StartsWith(p, StringComparison.Ordinal))),
        "endswith" => Method(name, a => Affix(s, a, name, (str, p) => str.EndsWith(p, StringComparison.Ordinal))),
        "upper" => Method(name, _ => CodePoints.Upper(s)),
        "lower" => Method(name, _ => CodePoints.Lower(s)),
        "casefold" => Method(name, _ => CodePoints.Lower(s)),
        "title" => Method(name, _ => CodePoints.Title(s)),
        "capitalize" => Method(name, _ => CodePoints.Capitalize(s)),
        "swapcase" => Method(name, _ => string.Concat(s.Select(c => char.IsUpper(c) ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c)))),
        "replace" => Method(name, a =>
        {
            a.Check(3, "count");
            var old = Str(a.Required(0, "old"), name);
            var @new = Str(a.Required(1, "new"), name);
            var count = a.Has(2, "count") ? PythonOps.AsLong(a.Get(2, "count")) : -1;
            return Replace(s, old, @new, count);
        }),
        "find" => Method(name, a => Find(s, a, name, last: false, raise: false)),
        "rfind" => Method(name, a => Find(s, a, name, last: true, raise: false)),
        "index" => Method(name, a => Find(s, a, name, last: false, raise: true)),
        "rindex" => Method(name, a => Find(s, a, name, last: true, raise: true)),
        "count" => Method(name, a => Count(s, Str(a.Required(0, "sub"), name))),
        "join" => Method(name, a => Join(s, a.Required(0, "iterable"))),
        "format" => Method(name, a => StringFormat.Format(s, a)),
        "isdigit" or "isdecimal" or "isnumeric" => Method(name, _ => CodePoints.IsDigit(s)),
        "isalpha" => Method(name, _ => CodePoints.IsAlpha(s)),
        "isalnum" => Method(name, _ => CodePoints.IsAlnum(s)),
        "isspace" => Method(name, _ => CodePoints.IsSpaceString(s)),
        "islower" => Method(name, _ => CodePoints.IsLowerString(s)),
        "isupper" => Method(name, _ => CodePoints.IsUpperString(s)),
        "removeprefix" => Method(name, a => { var p = Str(a.Required(0, "prefix"), name); return s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s; }),
        "removesuffix" => Method(name, a => { var p = Str(a.Required(0, "suffix"), name); return p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s; }),
        "zfill" => Method(name, a =>
        {
            var width = (int)JinjaLimits.CheckSize(PythonOps.AsLong(a.Required(0, "width")));
            if (s.Length >= width)
            {
                return s;
            }
            var sign = s.Length > 0 && s[0] is '+' or '-' ? s[..1] : "";
            return sign + new string('0', width - s.Length) + s[sign.Length..];
        }),
        "center" or "ljust" or "rjust" => Method(name, a =>
        {
            var width = (int)JinjaLimits.CheckSize(PythonOps.AsLong(a.Required(0, "width")));
            var fill = a.Has(1, "fillchar") ? Str(a.Get(1, "fillchar"), name)[0] : ' ';
            var length = CodePoints.Length(s);
            if (length >= width)
            {
                return s;
            }
            var pad = width - length;
            return name switch
            {
                "ljust" => s + new string(fill, pad),
                "rjust" => new string(fill, pad) + s,
                _ => new string(fill, pad / 2 + (pad & width & 1)) + s + new string(fill, pad - (pad / 2 + (pad & width & 1))),
            };
        }),
        "partition" or "rpartition" => Method(name, a =>
        {
            var sep = Str(a.Required(0, "sep"), name);
            if (sep.Length == 0)
            {
                throw new JinjaException("empty separator");
            }
            var i = name == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
            if (i < 0)
            {
                return name == "partition" ? new JinjaTuple([s, "", ""]) : new JinjaTuple(["", "", s]);
            }
            return new JinjaTuple([s[..i], sep, s[(i + sep.Length)..]]);
        }),
        _ => null,
    };

    private static long MaxSplit(JinjaArguments a) => a.Has(1, "maxsplit") ? PythonOps.AsLong(a.Get(1, "maxsplit")) : -1;

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? CodePoints.IsSpace : chars.Contains;
        var start = 0;
        var end = s.Length;
        if (left)
        {
            while (start < end && strip(s[start]))
            {
                start++;
            }
        }
        if (right)
        {
            while (end > start && strip(s[end - 1]))
            {
                end--;
            }
        }
        return s[start..end];
    }

    public static List<object?> Split(string s, string? sep, long maxSplit)
    {
        var result = new List<object?>();
        if (sep is null)
        {
            var i = 0;
            while (true)
            {
                while (i < s.Length && CodePoints.IsSpace(s[i]))
                {
                    i++;
                }
                if (i >= s.Length)
                {
                    break;
                }
                if (maxSplit >= 0 && result.Count >= maxSplit)
                {
                    result.Add(s[i..]);
                    break;
                }
                var start = i;
                while (i < s.Length && !CodePoints.IsSpace(s[i]))
                {
                    i++;
                }
                result.Add(s[start..i]);
            }
            return result;
        }
        if (sep.Length == 0)
        {
            throw new JinjaException("empty separator");
        }
        var pos = 0;
        while (maxSplit < 0 || result.Count < maxSplit)
        {
            var next = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (next < 0)
            {
                break;
            }
            result.Add(s[pos..next]);
            pos = next + sep.Length;
        }
        result.Add(s[pos..]);
        return result;
    }

    public static List<object?> RSplit(string s, string? sep, long maxSplit)
    {
        if (maxSplit < 0)
        {
            return Split(s, sep, maxSplit);
        }
        var result = new List<object?>();
        if (sep is null)
        {
            var i = s.Length;
            while (true)
            {
                while (i > 0 && CodePoints.IsSpace(s[i - 1]))
                {
                    i--;
                }
                if (i <= 0)
                {
                    break;
                }
                if (result.Count >= maxSplit)
                {
                    result.Add(s[..i]);
                    break;
                }
                var end = i;
                while (i > 0 && !CodePoints.IsSpace(s[i - 1]))
                {
                    i--;
                }
                result.Add(s[i..end]);
            }
            result.Reverse();
            return result;
        }
        if (sep.Length == 0)
        {
            throw new JinjaException("empty separator");
        }
        var pos = s.Length;
        while (result.Count < maxSplit)
        {
            var found = pos - sep.Length < 0 ? -1 : s.LastIndexOf(sep, pos - 1, pos, StringComparison.Ordinal);
            if (found < 0 || found + sep.Length > pos)
            {
                break;
            }
            result.Add(s[(found + sep.Length)..pos]);
            pos = found;
        }
        result.Add(s[..pos]);
        result.Reverse();
        return result;
    }

    private static List<object?> SplitLines(string s, bool keepEnds)
    {
        var result = new List<object?>();
        var start = 0;
        var i = 0;
        while (i < s.Length)
        {
            var c = s[i];
            if (c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029')
            {
                var end = i;
                i += c == '\r' && i + 1 < s.Length && s[i + 1] == '\n' ? 2 : 1;
                result.Add(keepEnds ? s[start..i] : s[start..end]);
                start = i;
            }
            else
            {
                i++;
            }
        }
        if (start < s.Length)
        {
            result.Add(s[start..]);
        }
        return result;
    }

    private static bool Affix(string s, JinjaArguments a, string name, Func<string, string, bool> test)
    {
        var affix = a.Required(0, name == "startswith" ? "prefix" : "suffix");
        var start = a.Has(1, "start") ? (int)PythonOps.AsLong(a.Get(1, "start")) : 0;
        var subject = start > 0 ? (start <= s.Length ? s[start..] : "") : s;
        return affix switch
        {
            string p => test(subject, p),
            JinjaTuple t => t.Any(p => test(subject, Str(p, name))),
            _ => throw new JinjaException($"{name} first arg must be str or a tuple of str, not {PythonFormat.TypeName(affix)}"),
        };
    }

    private static string Replace(string s, string old, string @new, long count)
    {
        if (@new.Length > old.Length)
        {
            var occurrences = Count(s, old);
            if (count >= 0)
            {
                occurrences = Math.Min(occurrences, count);
            }
            JinjaLimits.CheckSize(s.Length + occurrences * (@new.Length - old.Length));
        }
        if (count < 0)
        {
            if (old.Length == 0)
            {
                return @new + string.Join(@new, CodePoints.Split(s)) + (s.Length > 0 ? @new : "");
            }
            return s.Replace(old, @new, StringComparison.Ordinal);
        }
        var sb = new StringBuilder();
        var pos = 0;
        for (var n = 0; n < count; n++)
        {
            if (old.Length == 0)
            {
                sb.Append(@new);
                if (pos < s.Length)
                {
                    sb.Append(s[pos]);
                    pos++;
                }
                else
                {
                    break;
                }
                continue;
            }
            var next = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (next < 0)
            {
                break;
            }
            sb.Append(s, pos, next - pos).Append(@new);
            pos = next + old.Length;
        }
        sb.Append(s, pos, s.Length - pos);
        return sb.ToString();
    }

    private static object Find(string s, JinjaArguments a, string name, bool last, bool raise)
    {
        var sub = Str(a.Required(0, "sub"), name);
        var start = a.Has(1, "start") && a.Get(1, "start") is { } st ? (int)Math.Clamp(PythonOps.AsLong(st) < 0 ? PythonOps.AsLong(st) + s.Length : PythonOps.AsLong(st), 0, s.Length) : 0;
        var end = a.Has(2, "end") && a.Get(2, "end") is { } en ? (int)Math.Clamp(PythonOps.AsLong(en) < 0 ? PythonOps.AsLong(en) + s.Length : PythonOps.AsLong(en), 0, s.Length) : s.Length;
        var index = -1;
        if (end >= start)
        {
            var window = s[start..end];
            var i = last ? window.LastIndexOf(sub, StringComparison.Ordinal) : window.IndexOf(sub, StringComparison.Ordinal);
            index = i < 0 ? -1 : i + start;
        }
        if (index < 0 && raise)
        {
            throw new JinjaException("substring not found");
        }
        return CodePoints.CodePointIndex(s, index);
    }

    private static long Count(string s, string sub)
    {
        if (sub.Length == 0)
        {
            return CodePoints.Length(s) + 1;
        }
        long n = 0;
        for (var i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal))
        {
            n++;
        }
        return n;
    }

    private static string Join(string separator, object? iterable)
    {
        var items = PythonOps.Iterate(iterable);
        var parts = new string[items.Count];
        long size = (long)separator.Length * Math.Max(0, items.Count - 1);
        for (var i = 0; i < items.Count; i++)
        {
            parts[i] = items[i] as string ?? throw new JinjaException($"sequence item {i}: expected str instance, {PythonFormat.TypeName(items[i])} found");
            size += parts[i].Length;
        }
        JinjaLimits.CheckSize(size);
        return string.Join(separator, parts);
    }

}
