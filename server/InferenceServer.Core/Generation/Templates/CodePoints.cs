using System.Globalization;
using System.Text;

namespace InferenceServer.Generation.Templates;

/// <summary>
/// Python strings count code points, .NET strings UTF-16 units: length, indexing and slicing of strings go
/// through here so that an emoji counts once, as in Python.
/// </summary>
internal static class CodePoints
{
    private static bool HasSurrogates(string s)
    {
        foreach (var c in s)
        {
            if (char.IsSurrogate(c))
            {
                return true;
            }
        }
        return false;
    }

    public static int Length(string s) => HasSurrogates(s) ? Split(s).Length : s.Length;

    /// <summary>The code points of <paramref name="s"/>, each as a string.</summary>
    public static string[] Split(string s)
    {
        var result = new List<string>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                result.Add(s.Substring(i, 2));
                i++;
            }
            else
            {
                result.Add(s[i].ToString());
            }
        }
        return [.. result];
    }

    public static List<object?> Chars(string s) => [.. Split(s)];

    /// <summary>Converts a UTF-16 index into a code point index (for find/index results).</summary>
    public static long CodePointIndex(string s, int utf16Index)
    {
        if (utf16Index < 0 || !HasSurrogates(s))
        {
            return utf16Index;
        }
        var count = 0;
        for (var i = 0; i < utf16Index; i++)
        {
            if (!(char.IsLowSurrogate(s[i]) && i > 0 && char.IsHighSurrogate(s[i - 1])))
            {
                count++;
            }
        }
        return count;
    }

    // Python's full case mappings where .NET's simple ones differ, for the characters chat text meets.
    public static string Upper(string s)
    {
        var upper = s.ToUpperInvariant();
        return upper.AsSpan().IndexOfAny("ßﬀﬁﬂﬃﬄﬅﬆ") < 0 ? upper
            : upper.Replace("ß", "SS").Replace("ﬀ", "FF").Replace("ﬁ", "FI").Replace("ﬂ", "FL").Replace("ﬃ", "FFI").Replace("ﬄ", "FFL").Replace("ﬅ", "ST").Replace("ﬆ", "ST");
    }

    public static string Lower(string s)
    {
        var lower = s.ToLowerInvariant();
        return s.Contains('İ') ? s.Replace("İ", "i\u0307").ToLowerInvariant() : lower;
    }

    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    /// <summary>Python's str.capitalize(): the first character in title case, the rest lower case.</summary>
    public static string Capitalize(string s) => s.Length == 0 ? s : TitleCase(s[0]) + Lower(s[1..]);

    /// <summary>A character's title case (Python's, where it differs from upper case: ß -> Ss, ǆ -> ǅ, ligatures).</summary>
    private static string TitleCase(char c) => c switch
    {
        'ß' => "Ss",
        'ﬀ' => "Ff",
        'ﬁ' => "Fi",
        'ﬂ' => "Fl",
        'ﬃ' => "Ffi",
        'ﬄ' => "Ffl",
        'ﬅ' or 'ﬆ' => "St",
        'Ǆ' or 'ǅ' or 'ǆ' => "ǅ",
        'Ǉ' or 'ǈ' or 'ǉ' => "ǈ",
        'Ǌ' or 'ǋ' or 'ǌ' => "ǋ",
        'Ǳ' or 'ǲ' or 'ǳ' => "ǲ",
        _ => char.ToUpperInvariant(c).ToString(),
    };

    private static bool IsCased(char c) => char.IsUpper(c) || char.IsLower(c) || char.GetUnicodeCategory(c) == UnicodeCategory.TitlecaseLetter;

    /// <summary>Python's str.title(): title case after an uncased character, lower case after a cased one.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        var previousCased = false;
        foreach (var c in s)
        {
            var cased = IsCased(c);
            if (cased)
            {
                sb.Append(previousCased ? Lower(c.ToString()) : TitleCase(c));
            }
            else
            {
                sb.Append(c);
            }
            previousCased = cased;
        }
        return sb.ToString();
    }

    public static bool IsDigit(string s) => s.Length > 0 && s.All(c => char.GetUnicodeCategory(c) == UnicodeCategory.DecimalDigitNumber || c is >= '\u00b2' and <= '\u00b3' || c == '\u00b9');

    public static bool IsAlpha(string s) => s.Length > 0 && s.All(char.IsLetter);

    public static bool IsAlnum(string s) => s.Length > 0 && s.All(char.IsLetterOrDigit);

    public static bool IsSpaceString(string s) => s.Length > 0 && s.All(IsSpace);

    public static bool IsLowerString(string s) => s.Any(char.IsLetter) && !s.Any(char.IsUpper) && s.Any(char.IsLower);

    public static bool IsUpperString(string s) => s.Any(char.IsLetter) && !s.Any(char.IsLower) && s.Any(char.IsUpper);
}
