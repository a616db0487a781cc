using System.Globalization;
using System.Text;

namespace InferenceServer.Generation.Templates;

internal enum TokenKind
{
    Data,
    VariableBegin,
    VariableEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

internal readonly record struct Token(TokenKind Kind, string Value, int Line, object? Literal = null)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsName(string value) => Kind == TokenKind.Name && Value == value;

    public bool IsOperator(string value) => Kind == TokenKind.Operator && Value == value;

    public override string ToString() => Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VariableEnd => "end of print statement",
        _ => $"'{Value}'",
    };
}

/// <summary>
/// Splits a template into tokens the way Jinja2's lexer does with transformers' settings
/// (trim_blocks, lstrip_blocks, no keep_trailing_newline): the whitespace rules live here.
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"];

    private readonly string _source;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _line = 1;
    private bool _lineStarting = true;

    private JinjaLexer(string source)
    {
        _source = NormalizeNewlines(source);
    }

    public static List<Token> Tokenize(string source)
    {
        var lexer = new JinjaLexer(source);
        lexer.Run();
        return lexer._tokens;
    }

    /// <summary>\r\n, \r and \n all become \n, and one trailing newline is dropped (keep_trailing_newline=False).</summary>
    private static string NormalizeNewlines(string source)
    {
        var s = source.Contains('\r') ? source.Replace("\r\n", "\n").Replace('\r', '\n') : source;
        return s.EndsWith('\n') ? s[..^1] : s;
    }

    private void Run()
    {
        while (_pos < _source.Length)
        {
            var start = FindTagStart(_pos);
            if (start < 0)
            {
                Emit(TokenKind.Data, _source[_pos..]);
                _pos = _source.Length;
                break;
            }
            var text = _source[_pos..start];
            var kindChar = _source[start + 1];
            var signIndex = start + 2;
            var sign = signIndex < _source.Length && _source[signIndex] is '-' or '+' ? _source[signIndex] : '\0';
            var afterStart = sign == '\0' ? signIndex : signIndex + 1;

            var rawEnd = kindChar == '%' ? MatchRawBegin(start) : -1;
            text = StripBeforeTag(text, sign, isVariable: kindChar == '{');
            Emit(TokenKind.Data, text);
            _line += CountNewlines(_source, _pos, start);
            _lineStarting = false;

            if (rawEnd >= 0)
            {
                _lineStarting = _source[rawEnd - 1] == '\n';
                _line += CountNewlines(_source, start, rawEnd);
                _pos = rawEnd;
                LexRawBody();
            }
            else if (kindChar == '#')
            {
                _pos = afterStart;
                LexComment();
            }
            else
            {
                _tokens.Add(new(kindChar == '{' ? TokenKind.VariableBegin : TokenKind.BlockBegin, _source[start..afterStart], _line));
                _pos = afterStart;
                LexTag(isBlock: kindChar == '%');
            }
        }
        _tokens.Add(new(TokenKind.Eof, "", _line));
    }

    private void Emit(TokenKind kind, string text)
    {
        if (text.Length > 0)
        {
            _tokens.Add(new(kind, text, _line));
        }
    }

    private static int CountNewlines(string s, int from, int to)
    {
        var n = 0;
        for (var i = from; i < to; i++)
        {
            if (s[i] == '\n')
            {
                n++;
            }
        }
        return n;
    }

    private int FindTagStart(int from)
    {
        for (var i = _source.IndexOf('{', from); i >= 0 && i + 1 < _source.Length; i = _source.IndexOf('{', i + 1))
        {
            if (_source[i + 1] is '{' or '%' or '#')
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The text before a tag, after "-" (strip all whitespace) or lstrip_blocks (strip the line's indentation).</summary>
    private string StripBeforeTag(string text, char sign, bool isVariable)
    {
        if (sign == '-')
        {
            return RStrip(text);
        }
        if (sign != '+' && !isVariable)
        {
            var lineStart = text.LastIndexOf('\n') + 1;
            if ((lineStart > 0 || _lineStarting) && lineStart < text.Length && AllWhitespace(text, lineStart))
            {
                return text[..lineStart];
            }
        }
        return text;
    }

    private static string RStrip(string text)
    {
        var end = text.Length;
        while (end > 0 && CodePoints.IsSpace(text[end - 1]))
        {
            end--;
        }
        return text[..end];
    }

    private static bool AllWhitespace(string s, int from)
    {
        for (var i = from; i < s.Length; i++)
        {
            if (!CodePoints.IsSpace(s[i]))
            {
                return false;
            }
        }
        return true;
    }

    private int SkipWhitespace(int i)
    {
        while (i < _source.Length && CodePoints.IsSpace(_source[i]))
        {
            i++;
        }
        return i;
    }

    private bool At(int i, string s) => string.CompareOrdinal(_source, i, s, 0, s.Length) == 0;

    /// <summary>If a raw block begins at <paramref name="start"/> ({%[-+]? raw [-]?%}), the position after its tag.</summary>
    private int MatchRawBegin(int start)
    {
        var i = start + 2;
        if (i < _source.Length && _source[i] is '-' or '+')
        {
            i++;
        }
        i = SkipWhitespace(i);
        if (!At(i, "raw"))
        {
            return -1;
        }
        i = SkipWhitespace(i + 3);
        if (At(i, "-%}"))
        {
            return SkipWhitespace(i + 3);
        }
        return At(i, "%}") ? i + 2 : -1;
    }

    private void LexRawBody()
    {
        for (var i = _source.IndexOf("{%", _pos, StringComparison.Ordinal); i >= 0; i = _source.IndexOf("{%", i + 1, StringComparison.Ordinal))
        {
            var j = i + 2;
            var sign = j < _source.Length && _source[j] is '-' or '+' ? _source[j] : '\0';
            if (sign != '\0')
            {
                j++;
            }
            j = SkipWhitespace(j);
            if (!At(j, "endraw"))
            {
                continue;
            }
            j = SkipWhitespace(j + 6);
            int end;
            if (At(j, "+%}"))
            {
                end = j + 3;
            }
            else if (At(j, "-%}"))
            {
                end = SkipWhitespace(j + 3);
            }
            else if (At(j, "%}"))
            {
                end = j + 2 < _source.Length && _source[j + 2] == '\n' ? j + 3 : j + 2;
            }
            else
            {
                continue;
            }
            Emit(TokenKind.Data, StripBeforeTag(_source[_pos..i], sign, isVariable: false));
            _line += CountNewlines(_source, _pos, end);
            _lineStarting = _source[end - 1] == '\n';
            _pos = end;
            return;
        }
        throw new JinjaException("Missing end of raw directive", _line);
    }

    private void LexComment()
    {
        var i = _source.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (i >= 0)
        {
            int end;
            if (i > _pos && _source[i - 1] == '+')
            {
                end = i + 2;
            }
            else if (i > _pos && _source[i - 1] == '-')
            {
                end = SkipWhitespace(i + 2);
            }
            else
            {
                end = i + 2 < _source.Length && _source[i + 2] == '\n' ? i + 3 : i + 2;
            }
            _line += CountNewlines(_source, _pos, end);
            _lineStarting = _source[end - 1] == '\n';
            _pos = end;
            return;
        }
        throw new JinjaException("Missing end of comment tag", _line);
    }

    private void LexTag(bool isBlock)
    {
        var balance = new Stack<char>();
        while (true)
        {
            if (_pos >= _source.Length)
            {
                throw new JinjaException($"unexpected end of template, expected '{(isBlock ? "%}" : "}}")}'", _line);
            }
            var c = _source[_pos];
            if (CodePoints.IsSpace(c))
            {
                var end = SkipWhitespace(_pos);
                _line += CountNewlines(_source, _pos, end);
                _lineStarting = _source[end - 1] == '\n';
                _pos = end;
                continue;
            }
            if (balance.Count == 0 && TryTagEnd(isBlock))
            {
                return;
            }
            if (char.IsAsciiDigit(c))
            {
                LexNumber();
                continue;
            }
            if (char.IsLetter(c) || c == '_')
            {
                var start = _pos;
                while (_pos < _source.Length && (char.IsLetterOrDigit(_source[_pos]) || _source[_pos] == '_'))
                {
                    _pos++;
                }
                _tokens.Add(new(TokenKind.Name, _source[start.._pos], _line));
                _lineStarting = false;
                continue;
            }
            if (c is '\'' or '"')
            {
                LexString(c);
                continue;
            }
            var op = Operators.FirstOrDefault(o => At(_pos, o));
            if (op is null)
            {
                throw new JinjaException($"unexpected char '{c}' at {_pos}", _line);
            }
            switch (op)
            {
                case "(":
                    balance.Push(')');
                    break;
                case "[":
                    balance.Push(']');
                    break;
                case "{":
                    balance.Push('}');
                    break;
                case ")" or "]" or "}":
                    if (balance.Count == 0)
                    {
                        throw new JinjaException($"unexpected '{op}'", _line);
                    }
                    var expected = balance.Pop();
                    if (expected != op[0])
                    {
                        throw new JinjaException($"unexpected '{op}', expected '{expected}'", _line);
                    }
                    break;
            }
            _tokens.Add(new(TokenKind.Operator, op, _line));
            _lineStarting = false;
            _pos += op.Length;
        }
    }

    private bool TryTagEnd(bool isBlock)
    {
        int end;
        if (isBlock)
        {
            if (At(_pos, "+%}"))
            {
                end = _pos + 3;
            }
            else if (At(_pos, "-%}"))
            {
                end = SkipWhitespace(_pos + 3);
            }
            else if (At(_pos, "%}"))
            {
                end = _pos + 2 < _source.Length && _source[_pos + 2] == '\n' ? _pos + 3 : _pos + 2;
            }
            else
            {
                return false;
            }
        }
        else if (At(_pos, "-}}"))
        {
            end = SkipWhitespace(_pos + 3);
        }
        else if (At(_pos, "}}"))
        {
            end = _pos + 2;
        }
        else
        {
            return false;
        }
        _tokens.Add(new(isBlock ? TokenKind.BlockEnd : TokenKind.VariableEnd, _source[_pos..end], _line));
        _line += CountNewlines(_source, _pos, end);
        _lineStarting = _source[end - 1] == '\n';
        _pos = end;
        return true;
    }

    private void LexNumber()
    {
        var start = _pos;
        var afterDot = start > 0 && _source[start - 1] == '.';
        var i = ScanDigits(_pos);
        var isFloat = false;
        if (!afterDot)
        {
            var j = i;
            if (j + 1 < _source.Length && _source[j] == '.' && char.IsAsciiDigit(_source[j + 1]))
            {
                j = ScanDigits(j + 1);
                isFloat = true;
            }
            if (j < _source.Length && _source[j] is 'e' or 'E')
            {
                var k = j + 1;
                if (k < _source.Length && _source[k] is '+' or '-')
                {
                    k++;
                }
                if (k < _source.Length && char.IsAsciiDigit(_source[k]))
                {
                    j = ScanDigits(k);
                    isFloat = true;
                }
            }
            if (isFloat)
            {
                i = j;
            }
        }
        var text = _source[start..i];
        var clean = text.Replace("_", "");
        _pos = i;
        _lineStarting = false;
        if (isFloat)
        {
            _tokens.Add(new(TokenKind.Float, text, _line, double.Parse(clean, NumberStyles.Float, CultureInfo.InvariantCulture)));
        }
        else
        {
            _tokens.Add(new(TokenKind.Integer, text, _line, long.TryParse(clean, NumberStyles.None, CultureInfo.InvariantCulture, out var l) ? l : throw new JinjaException("integer literal too large", _line)));
        }
    }

    private int ScanDigits(int i)
    {
        while (i < _source.Length && (char.IsAsciiDigit(_source[i]) || (_source[i] == '_' && i + 1 < _source.Length && char.IsAsciiDigit(_source[i + 1]))))
        {
            i++;
        }
        return i;
    }

    private void LexString(char quote)
    {
        var start = _pos;
        var sb = new StringBuilder();
        var i = _pos + 1;
        while (true)
        {
            if (i >= _source.Length)
            {
                throw new JinjaException($"unexpected char '{quote}' at {start}", _line);
            }
            var c = _source[i];
            if (c == quote)
            {
                break;
            }
            if (c != '\\')
            {
                sb.Append(c);
                i++;
                continue;
            }
            if (i + 1 >= _source.Length)
            {
                throw new JinjaException($"unexpected char '{quote}' at {start}", _line);
            }
            var e = _source[i + 1];
            i += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\n': break;
                case 'x':
                    sb.Append((char)ParseHex(i, 2));
                    i += 2;
                    break;
                case 'u':
                    sb.Append((char)ParseHex(i, 4));
                    i += 4;
                    break;
                case 'U':
                    sb.Append(char.ConvertFromUtf32(ParseHex(i, 8)));
                    i += 8;
                    break;
                case >= '0' and <= '7':
                {
                    var value = e - '0';
                    for (var k = 0; k < 2 && i < _source.Length && _source[i] is >= '0' and <= '7'; k++, i++)
                    {
                        value = value * 8 + (_source[i] - '0');
                    }
                    sb.Append((char)value);
                    break;
                }
                default:
                    sb.Append('\\').Append(e);
                    break;
            }
        }
        var end = i + 1;
        _tokens.Add(new(TokenKind.String, _source[start..end], _line, sb.ToString()));
        _line += CountNewlines(_source, start, end);
        _lineStarting = false;
        _pos = end;
    }

    private int ParseHex(int at, int digits)
    {
        if (at + digits > _source.Length || !int.TryParse(_source.AsSpan(at, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var value))
        {
            throw new JinjaException("truncated \\x, \\u or \\U escape in a string literal", _line);
        }
        return value;
    }
}
