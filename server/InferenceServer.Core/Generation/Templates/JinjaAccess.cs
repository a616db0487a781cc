namespace InferenceServer.Generation.Templates;

/// <summary>
/// Attribute (<c>a.b</c>), item (<c>a[b]</c>) and slice access as Jinja2 does them: <c>.</c> tries the Python
/// attribute (a method) and then the item, <c>[]</c> the item and then the attribute; a miss is Undefined.
/// </summary>
internal static class JinjaAccess
{
    public static object? GetAttribute(object? target, string name)
    {
        switch (target)
        {
            case JinjaUndefined u:
                throw u.Fail();
            case JinjaNamespace ns:
                return ns.Attributes.TryGetValue(name, out var v) ? v : JinjaUndefined.ForAttribute(target, name);
            case LoopObject loop:
                return loop.GetAttribute(name);
            case JinjaRenderer.RecursiveLoop r:
                return r.Loop.GetAttribute(name);
        }
        var method = PythonMethods.Get(target, name);
        if (method is not null)
        {
            return method;
        }
        if (target is JinjaDict dict && dict.TryGetValue(name, out var value))
        {
            return value;
        }
        return target is null
            ? new JinjaUndefined($"'None' has no attribute '{name}'")
            : JinjaUndefined.ForAttribute(target, name);
    }

    public static object? GetItem(object? target, object? key)
    {
        switch (target)
        {
            case JinjaUndefined u:
                throw u.Fail();
            case JinjaDict dict:
                if (PythonOps.IsHashable(key) && dict.TryGetValue(PythonOps.ToKey(key), out var value))
                {
                    return value;
                }
                break;
            case string s when PythonOps.IsInteger(key):
            {
                var chars = CodePoints.Split(s);
                var i = PythonOps.AsLong(key);
                if (i < 0)
                {
                    i += chars.Length;
                }
                if (i >= 0 && i < chars.Length)
                {
                    return chars[i];
                }
                return new JinjaUndefined($"str object has no element {PythonFormat.Repr(key)}");
            }
            case IReadOnlyList<object?> list when PythonOps.IsInteger(key):
            {
                var i = PythonOps.AsLong(key);
                if (i < 0)
                {
                    i += list.Count;
                }
                if (i >= 0 && i < list.Count)
                {
                    return list[(int)i];
                }
                return new JinjaUndefined($"{PythonFormat.TypeName(target)} object has no element {PythonFormat.Repr(key)}");
            }
            case JinjaNamespace or LoopObject or JinjaRenderer.RecursiveLoop when key is string name:
                return GetAttribute(target, name);
        }
        if (key is string attribute)
        {
            var method = PythonMethods.Get(target, attribute);
            if (method is not null)
            {
                return method;
            }
            return target is null
                ? new JinjaUndefined($"'None' has no attribute '{attribute}'")
                : JinjaUndefined.ForAttribute(target, attribute);
        }
        return new JinjaUndefined($"{(target is null ? "None" : PythonFormat.TypeName(target) + " object")} has no element {PythonFormat.Repr(key)}");
    }

    public static object? Slice(object? target, object? start, object? stop, object? step)
    {
        switch (target)
        {
            case JinjaUndefined u:
                throw u.Fail();
            case string s:
            {
                var chars = CodePoints.Split(s);
                var indices = SliceIndices(chars.Length, start, stop, step);
                return string.Concat(indices.Select(i => chars[i]));
            }
            case JinjaTuple t:
                return new JinjaTuple(SliceIndices(t.Count, start, stop, step).Select(i => t[i]).ToArray());
            case JinjaRange r:
            {
                var (from, to, k) = SliceBounds(r.Count, start, stop, step);
                var count = SliceIndices(r.Count, start, stop, step).Count;
                return new JinjaRange(r.Start + from * r.Step, r.Start + to * r.Step, r.Step * k, count);
            }
            case IReadOnlyList<object?> list:
                return SliceIndices(list.Count, start, stop, step).Select(i => list[i]).ToList();
            default:
                // Jinja2 turns the TypeError into Undefined.
                return new JinjaUndefined($"{PythonFormat.TypeName(target)} object has no element slice");
        }
    }

    /// <summary>Python's slice.indices(length), expanded.</summary>
    public static List<int> SliceIndices(int length, object? start, object? stop, object? step)
    {
        var (from, to, stepValue) = SliceBounds(length, start, stop, step);
        var result = new List<int>();
        if (stepValue > 0)
        {
            for (var i = from; i < to; i += stepValue)
            {
                result.Add((int)i);
            }
        }
        else
        {
            for (var i = from; i > to; i += stepValue)
            {
                result.Add((int)i);
            }
        }
        return result;
    }

    /// <summary>Python's slice.indices(length): the clamped start, stop and step.</summary>
    public static (long From, long To, long Step) SliceBounds(int length, object? start, object? stop, object? step)
    {
        long stepValue = step is null ? 1 : SliceInt(step);
        if (stepValue == 0)
        {
            throw new JinjaException("slice step cannot be zero");
        }
        long lower = stepValue < 0 ? -1 : 0;
        long upper = stepValue < 0 ? length - 1 : length;
        long Clamp(object? v, long fallback)
        {
            if (v is null)
            {
                return fallback;
            }
            var i = SliceInt(v);
            if (i < 0)
            {
                i += length;
                return i < lower ? lower : i;
            }
            return i > upper ? upper : i;
        }
        return (Clamp(start, stepValue < 0 ? upper : lower), Clamp(stop, stepValue < 0 ? lower : upper), stepValue);
    }

    private static long SliceInt(object v) => PythonOps.IsInteger(v)
        ? PythonOps.AsLong(v)
        : throw new JinjaException("slice indices must be integers or None or have an __index__ method");
}
