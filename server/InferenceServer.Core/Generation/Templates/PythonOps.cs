using System.Globalization;
using System.Numerics;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>Python's semantics of the engine values: truth, equality, ordering, arithmetic, containment, length.</summary>
internal static class PythonOps
{
    public static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        BigInteger g => !g.IsZero,
        double d => d != 0,
        string s => s.Length > 0,
        JinjaUndefined => false,
        IReadOnlyList<object?> list => list.Count > 0,
        JinjaDict dict => dict.Count > 0,
        JinjaDictView view => view.Items.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool or BigInteger;

    /// <summary>Python ints (and bools): long, and BigInteger beyond it, so that integers never overflow.</summary>
    public static bool IsInteger(object? v) => v is long or bool or BigInteger;

    public static BigInteger AsBig(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        BigInteger g => g,
        _ => throw new JinjaException($"'{PythonFormat.TypeName(v)}' object cannot be interpreted as an integer"),
    };

    /// <summary>An integer result as the engine keeps it: long when it fits, BigInteger beyond.</summary>
    public static object Normalize(BigInteger g) => g >= long.MinValue && g <= long.MaxValue ? (object)(long)g : g;

    public static long AsLong(object? v) => v switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        BigInteger g => g >= long.MinValue && g <= long.MaxValue ? (long)g : throw new JinjaException("Python int too large to convert to C long"),
        _ => throw new JinjaException($"'{PythonFormat.TypeName(v)}' object cannot be interpreted as an integer"),
    };

    public static double AsDouble(object? v) => v switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        BigInteger g => (double)g,
        _ => throw new JinjaException($"must be real number, not {PythonFormat.TypeName(v)}"),
    };

    public static bool PyEquals(object? a, object? b)
    {
        if (a is JinjaUndefined || b is JinjaUndefined)
        {
            return a is JinjaUndefined && b is JinjaUndefined;
        }
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                return AsDouble(a) == AsDouble(b);
            }
            return a is long x && b is long y ? x == y : AsBig(a) == AsBig(b);
        }
        switch (a)
        {
            case null:
                return b is null;
            case string sa:
                return b is string sb && string.Equals(sa, sb, StringComparison.Ordinal);
            case JinjaTuple ta:
                return b is JinjaTuple tb && SequenceEquals(ta, tb);
            case JinjaRange ra:
                return b is JinjaRange rb && SequenceEquals(ra, rb);
            case IReadOnlyList<object?> la:
                return b is IReadOnlyList<object?> lb && b is not (JinjaTuple or JinjaRange) && SequenceEquals(la, lb);
            case JinjaDict da:
                if (b is not JinjaDict db || da.Count != db.Count)
                {
                    return false;
                }
                foreach (var (k, v) in da)
                {
                    if (!db.TryGetValue(k, out var w) || !PyEquals(v, w))
                    {
                        return false;
                    }
                }
                return true;
            default:
                return ReferenceEquals(a, b) || Equals(a, b);
        }
    }

    private static bool SequenceEquals(IReadOnlyList<object?> a, IReadOnlyList<object?> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }
        for (var i = 0; i < a.Count; i++)
        {
            if (!PyEquals(a[i], b[i]))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Python's ordering (&lt;): numbers, strings (by code point), lists and tuples lexicographically.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                var x = AsDouble(a);
                var y = AsDouble(b);
                return x < y ? -1 : x > y ? 1 : x == y ? 0 : 2; // 2: unordered (nan)
            }
            return a is long xl && b is long yl ? xl.CompareTo(yl) : Math.Sign(AsBig(a).CompareTo(AsBig(b)));
        }
        if (a is string sa && b is string sb)
        {
            return Math.Sign(CompareCodePoints(sa, sb));
        }
        if (a is IReadOnlyList<object?> la && b is IReadOnlyList<object?> lb && (a is JinjaTuple) == (b is JinjaTuple) && a is not JinjaRange && b is not JinjaRange)
        {
            for (var i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (!PyEquals(la[i], lb[i]))
                {
                    return Compare(la[i], lb[i], op);
                }
            }
            return la.Count.CompareTo(lb.Count);
        }
        if (a is JinjaUndefined u)
        {
            throw u.Fail();
        }
        if (b is JinjaUndefined ub)
        {
            throw ub.Fail();
        }
        throw new JinjaException($"'{op}' not supported between instances of '{PythonFormat.TypeName(a)}' and '{PythonFormat.TypeName(b)}'");
    }

    public static int CompareCodePoints(string a, string b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            if (a[i] != b[i])
            {
                // Surrogates (astral code points) sort above the BMP in code point order.
                var ca = char.IsSurrogate(a[i]) ? a[i] + 0x10000 : a[i];
                var cb = char.IsSurrogate(b[i]) ? b[i] + 0x10000 : b[i];
                return ca.CompareTo(cb);
            }
        }
        return a.Length.CompareTo(b.Length);
    }

    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string sub ? s.Contains(sub, StringComparison.Ordinal)
            : throw new JinjaException($"'in <string>' requires string as left operand, not {PythonFormat.TypeName(item)}"),
        JinjaDict d => item is not null && IsHashable(item) ? d.ContainsKey(item) : item is null ? d.ContainsKey(NullKey) : throw new JinjaException($"unhashable type: '{PythonFormat.TypeName(item)}'"),
        IReadOnlyList<object?> list => list.Any(x => PyEquals(x, item)),
        JinjaGenerator g => g.Consume().Any(x => PyEquals(x, item)),
        JinjaDictView view => view.Items.Any(x => PyEquals(x, item)),
        JinjaUndefined => false,
        _ => throw new JinjaException($"argument of type '{PythonFormat.TypeName(container)}' is not iterable"),
    };

    /// <summary>Stands in for None as a dict key (dictionaries cannot hold a null key).</summary>
    public static readonly object NullKey = new NoneKey();

    private sealed class NoneKey
    {
        public override string ToString() => "None";
    }

    public static bool IsHashable(object? v) => v is not JinjaDict && (v is not IReadOnlyList<object?> || v is JinjaTuple);

    public static object? Add(object? a, object? b)
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is long x && b is long y)
            {
                var sum = x + y;
                // No overflow when the operands' signs differ or the sum keeps their sign.
                return ((x ^ sum) & (y ^ sum)) >= 0 ? sum : Normalize((BigInteger)x + y);
            }
            return a is double || b is double ? AsDouble(a) + AsDouble(b) : Normalize(AsBig(a) + AsBig(b));
        }
        if (a is string sa && b is string sb)
        {
            JinjaLimits.CheckSize((long)sa.Length + sb.Length);
            return string.Concat(sa, sb);
        }
        if (a is JinjaTuple ta && b is JinjaTuple tb)
        {
            return new JinjaTuple([.. ta.Items, .. tb.Items]);
        }
        if (a is IReadOnlyList<object?> la && b is IReadOnlyList<object?> lb && a is not (JinjaTuple or JinjaRange) && b is not (JinjaTuple or JinjaRange))
        {
            var result = new List<object?>((int)JinjaLimits.CheckSize((long)la.Count + lb.Count, "a list"));
            result.AddRange(la);
            result.AddRange(lb);
            return result;
        }
        throw BinaryError("+", a, b);
    }

    public static JinjaException BinaryError(string op, object? a, object? b)
    {
        if (a is JinjaUndefined ua)
        {
            return ua.Fail();
        }
        if (b is JinjaUndefined ub)
        {
            return ub.Fail();
        }
        if (op == "+" && a is string)
        {
            return new JinjaException($"can only concatenate str (not \"{PythonFormat.TypeName(b)}\") to str");
        }
        if (op == "+" && a is IReadOnlyList<object?> and not JinjaTuple)
        {
            return new JinjaException($"can only concatenate list (not \"{PythonFormat.TypeName(b)}\") to list");
        }
        return new JinjaException($"unsupported operand type(s) for {op}: '{PythonFormat.TypeName(a)}' and '{PythonFormat.TypeName(b)}'");
    }

    public static object? Arithmetic(string op, object? a, object? b)
    {
        if (op == "+")
        {
            return Add(a, b);
        }
        if (op == "%" && a is string format)
        {
            return PercentFormat.Format(format, b);
        }
        if (op == "*")
        {
            if (a is string s && IsInteger(b))
            {
                return Repeat(s, AsLong(b));
            }
            if (b is string s2 && IsInteger(a))
            {
                return Repeat(s2, AsLong(a));
            }
            if (a is IReadOnlyList<object?> list && a is not JinjaRange && IsInteger(b))
            {
                return RepeatList(list, AsLong(b));
            }
            if (b is IReadOnlyList<object?> list2 && b is not JinjaRange && IsInteger(a))
            {
                return RepeatList(list2, AsLong(a));
            }
        }
        if (!IsNumber(a) || !IsNumber(b))
        {
            throw BinaryError(op, a, b);
        }
        var isFloat = a is double || b is double;
        switch (op)
        {
            case "-":
                return isFloat ? AsDouble(a) - AsDouble(b) : Normalize(AsBig(a) - AsBig(b));
            case "*":
                return isFloat ? AsDouble(a) * AsDouble(b) : Normalize(AsBig(a) * AsBig(b));
            case "/":
            {
                var y = AsDouble(b);
                if (y == 0)
                {
                    throw new JinjaException(isFloat ? "float division by zero" : "division by zero");
                }
                return AsDouble(a) / y;
            }
            case "//":
                if (isFloat)
                {
                    var y = AsDouble(b);
                    if (y == 0)
                    {
                        throw new JinjaException("float floor division by zero");
                    }
                    return FloatDivMod(AsDouble(a), y).Div;
                }
                else
                {
                    var x = AsBig(a);
                    var y = AsBig(b);
                    if (y.IsZero)
                    {
                        throw new JinjaException("integer division or modulo by zero");
                    }
                    var q = BigInteger.DivRem(x, y, out var r);
                    if (!r.IsZero && (r.Sign < 0) != (y.Sign < 0))
                    {
                        q -= 1;
                    }
                    return Normalize(q);
                }
            case "%":
                if (isFloat)
                {
                    var y = AsDouble(b);
                    if (y == 0)
                    {
                        throw new JinjaException("float modulo");
                    }
                    return FloatDivMod(AsDouble(a), y).Mod;
                }
                else
                {
                    var x = AsBig(a);
                    var y = AsBig(b);
                    if (y.IsZero)
                    {
                        throw new JinjaException("integer division or modulo by zero");
                    }
                    var m = BigInteger.Remainder(x, y);
                    if (!m.IsZero && (m.Sign < 0) != (y.Sign < 0))
                    {
                        m += y;
                    }
                    return Normalize(m);
                }
            case "**":
                if (AsDouble(a) == 0 && AsDouble(b) < 0)
                {
                    throw new JinjaException(isFloat ? "0.0 cannot be raised to a negative power" : "0 cannot be raised to a negative power");
                }
                if (AsDouble(a) < 0 && isFloat && AsDouble(b) != Math.Floor(AsDouble(b)))
                {
                    throw new JinjaException("a negative number raised to a fractional power is complex, which templates do not support");
                }
                if (!isFloat && AsBig(b).Sign >= 0)
                {
                    var x = AsBig(a);
                    var exponent = AsBig(b);
                    if (BigInteger.Abs(x) > 1 && (exponent > 1_000_000 || (double)exponent * BigInteger.Abs(x).GetBitLength() > 1_000_000))
                    {
                        throw new JinjaException("the power is too large for a template");
                    }
                    return Normalize(BigInteger.Pow(x, BigInteger.Abs(x) > 1 ? (int)exponent : (int)BigInteger.Min(exponent, 2 + (exponent % 2))));
                }
                return Math.Pow(AsDouble(a), AsDouble(b));
            default:
                throw new JinjaException($"unknown operator {op}");
        }
    }

    /// <summary>CPython's float divmod (Objects/floatobject.c), so that // and % agree with Python to the bit.</summary>
    private static (double Div, double Mod) FloatDivMod(double vx, double wx)
    {
        var mod = vx % wx;
        var div = (vx - mod) / wx;
        if (mod != 0)
        {
            if ((wx < 0) != (mod < 0))
            {
                mod += wx;
                div -= 1.0;
            }
        }
        else
        {
            mod = Math.CopySign(0.0, wx);
        }
        double floorDiv;
        if (div != 0)
        {
            floorDiv = Math.Floor(div);
            if (div - floorDiv > 0.5)
            {
                floorDiv += 1.0;
            }
        }
        else
        {
            floorDiv = Math.CopySign(0.0, vx / wx);
        }
        return (floorDiv, mod);
    }

    private static string Repeat(string s, long n)
    {
        if (n <= 0)
        {
            return "";
        }
        if (s.Length * n > JinjaLimits.MaxOutputChars)
        {
            throw new JinjaException("string repetition exceeds the output size limit");
        }
        return new StringBuilder(s.Length * (int)n).Insert(0, s, (int)n).ToString();
    }

    private static object RepeatList(IReadOnlyList<object?> list, long n)
    {
        if (list is JinjaTuple tuple)
        {
            return new JinjaTuple([.. (List<object?>)RepeatList(tuple.Items, n)]);
        }
        var result = new List<object?>();
        if (list.Count * Math.Max(n, 0) > JinjaLimits.MaxLoopIterations)
        {
            throw new JinjaException("list repetition exceeds the size limit");
        }
        for (var i = 0; i < n; i++)
        {
            result.AddRange(list);
        }
        return result;
    }

    /// <summary>Python's len().</summary>
    public static long Length(object? v) => v switch
    {
        string s => CodePoints.Length(s),
        IReadOnlyList<object?> list => list.Count,
        JinjaDict d => d.Count,
        JinjaDictView view => view.Items.Count,
        JinjaUndefined => 0,
        _ => throw new JinjaException($"object of type '{PythonFormat.TypeName(v)}' has no len()"),
    };

    /// <summary>Python's iter(): the items a for loop, a filter or list() sees.</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        string s => CodePoints.Chars(s),
        IReadOnlyList<object?> list => list,
        JinjaDict d => d.Keys.Select(KeyValue).ToList(),
        JinjaUndefined => [],
        JinjaGenerator g => g.Consume(),
        JinjaDictView view => view.Items,
        _ => throw new JinjaException($"'{PythonFormat.TypeName(v)}' object is not iterable"),
    };

    /// <summary>A dict key as the template sees it (the None placeholder becomes null).</summary>
    public static object? KeyValue(object key) => ReferenceEquals(key, NullKey) ? null : key;

    /// <summary>A value as a dict key (null becomes the None placeholder).</summary>
    public static object ToKey(object? value) => value switch
    {
        null => NullKey,
        _ when IsHashable(value) => value,
        _ => throw new JinjaException($"unhashable type: '{PythonFormat.TypeName(value)}'"),
    };

}

/// <summary>The render budget that keeps a template from hanging or flooding the server.</summary>
internal static class JinjaLimits
{
    public const int MaxOutputChars = 10_000_000;
    public const long MaxLoopIterations = 10_000_000;
    public const int MaxCallDepth = 200;
    public const int MaxRange = 100_000;

    /// <summary>Refuses to build a string or list longer than the output cap (string doubling in a loop, huge widths).</summary>
    public static long CheckSize(long size, string what = "a string")
    {
        if (size > MaxOutputChars)
        {
            throw new JinjaException($"{what} of {size} elements exceeds the template size limit ({MaxOutputChars})");
        }
        return size;
    }
}
