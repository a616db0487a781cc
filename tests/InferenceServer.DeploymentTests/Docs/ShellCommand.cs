using System.Text;

namespace InferenceServer.Tests.Docs;

/// <summary>
/// One command of a documented shell session, read with the part of POSIX shell syntax a README example may use:
/// words with single quotes, double quotes (no expansions inside), backslash escapes and backslash-newline
/// continuations; one <c>&gt; FILE</c> redirection; one here-document (<c>&lt;&lt;'EOF'</c>, or unquoted when its body
/// has nothing the shell would expand); a trailing <c># comment</c>. Anything else the shell would interpret (pipes,
/// <c>;</c>, <c>&amp;&amp;</c>, <c>$</c> and backtick expansions, globs, <c>~</c>, <c>!</c>, braces) is refused by
/// name, so that a test never runs a command differently from the shell.
/// </summary>
internal sealed record ShellCommand(IReadOnlyList<string> Words, string? StdoutFile, string? HereDocument)
{
    /// <summary>Reads <paramref name="text"/> (the lines of one command, joined with <c>\n</c>).</summary>
    public static ShellRead Read(string text) => new Lexer(text).Run();

    private sealed class Lexer(string text)
    {
        private readonly StringBuilder _word = new();
        private readonly List<string> _words = [];
        private readonly List<(string Delimiter, bool Quoted)> _pendingHereDocs = [];
        private string? _stdoutFile;
        private string? _hereDocument;
        private bool _inWord;
        private bool _wordQuoted;
        private string? _expecting; // the operator whose operand the next word is: ">" or "<<"
        private int _i;

        public ShellRead Run()
        {
            while (_i < text.Length)
            {
                var c = text[_i];
                ShellRead? stop = c switch
                {
                    '\'' => SingleQuoted(),
                    '"' => DoubleQuoted(),
                    '\\' => Escaped(),
                    ' ' or '\t' => Blank(),
                    '\n' => Newline(),
                    '#' when !_inWord => Comment(),
                    '<' or '>' or '|' or '&' or ';' or '(' or ')' => Operator(),
                    '$' or '`' => ShellRead.Refused($"'{c}' outside single quotes (the shell would expand it)"),
                    '*' or '?' or '[' or '{' or '}' or '!' => ShellRead.Refused($"an unquoted '{c}' (the shell may expand it)"),
                    '~' when !_inWord => ShellRead.Refused("an unquoted '~' (the shell expands it)"),
                    _ => Literal(c),
                };
                if (stop is not null)
                {
                    return stop;
                }
            }
            if (EndWord() is { } refused)
            {
                return refused;
            }
            if (_expecting is not null)
            {
                return ShellRead.Refused($"'{_expecting}' without an operand");
            }
            if (_pendingHereDocs.Count > 0)
            {
                return ShellRead.Incomplete;
            }
            return _words.Count == 0
                ? ShellRead.Refused("no command")
                : ShellRead.Complete(new ShellCommand(_words, _stdoutFile, _hereDocument));
        }

        private ShellRead? Literal(char c)
        {
            _word.Append(c);
            _inWord = true;
            _i++;
            return null;
        }

        private ShellRead? SingleQuoted()
        {
            var close = text.IndexOf('\'', _i + 1);
            if (close < 0)
            {
                return ShellRead.Incomplete;
            }
            _word.Append(text, _i + 1, close - _i - 1);
            _inWord = _wordQuoted = true;
            _i = close + 1;
            return null;
        }

        private ShellRead? DoubleQuoted()
        {
            for (var j = _i + 1; j < text.Length; j++)
            {
                var d = text[j];
                if (d == '"')
                {
                    _inWord = _wordQuoted = true;
                    _i = j + 1;
                    return null;
                }
                if (d == '\\' && j + 1 < text.Length && text[j + 1] is '"' or '\\' or '$' or '`' or '\n')
                {
                    if (text[j + 1] != '\n')
                    {
                        _word.Append(text[j + 1]);
                    }
                    j++;
                    continue;
                }
                if (d is '$' or '`' or '!')
                {
                    return ShellRead.Refused($"'{d}' inside double quotes (the shell would expand it)");
                }
                _word.Append(d);
            }
            return ShellRead.Incomplete;
        }

        private ShellRead? Escaped()
        {
            if (_i + 1 == text.Length)
            {
                return ShellRead.Incomplete; // a continuation line follows
            }
            if (text[_i + 1] != '\n')
            {
                _word.Append(text[_i + 1]);
                _inWord = _wordQuoted = true;
            }
            _i += 2;
            return null;
        }

        private ShellRead? Blank()
        {
            _i++;
            return EndWord();
        }

        private ShellRead? Comment()
        {
            var end = text.IndexOf('\n', _i);
            _i = end < 0 ? text.Length : end;
            return null;
        }

        private ShellRead? Operator()
        {
            if (EndWord() is { } refused)
            {
                return refused;
            }
            if (_expecting is not null)
            {
                return ShellRead.Refused($"'{_expecting}' without an operand");
            }
            var rest = text.AsSpan(_i);
            if (rest.StartsWith("<<-") || rest.StartsWith("<<<"))
            {
                return ShellRead.Refused($"the operator '{rest[..3]}'");
            }
            if (rest.StartsWith("<<"))
            {
                _expecting = "<<";
                _i += 2;
                return null;
            }
            if (rest[0] == '>' && (rest.Length == 1 || rest[1] is not ('>' or '&' or '|')))
            {
                _expecting = ">";
                _i++;
                return null;
            }
            var length = rest.Length > 1 && rest[1] is '>' or '&' or '|' or '<' ? 2 : 1;
            return ShellRead.Refused($"the operator '{rest[..length]}'");
        }

        /// <summary>A newline outside quotes: the command ends unless here-documents are waiting for their bodies.</summary>
        private ShellRead? Newline()
        {
            if (EndWord() is { } refused)
            {
                return refused;
            }
            if (_expecting is not null)
            {
                return ShellRead.Refused($"'{_expecting}' without an operand");
            }
            if (_pendingHereDocs.Count == 0)
            {
                return ShellRead.Refused("a second command on the next line");
            }
            _i++;
            foreach (var (delimiter, quoted) in _pendingHereDocs)
            {
                var body = new StringBuilder();
                var found = false;
                while (_i < text.Length && !found)
                {
                    var end = text.IndexOf('\n', _i);
                    var line = end < 0 ? text[_i..] : text[_i..end];
                    _i = end < 0 ? text.Length : end + 1;
                    if (line == delimiter)
                    {
                        found = true;
                    }
                    else
                    {
                        body.Append(line).Append('\n');
                    }
                }
                if (!found)
                {
                    return ShellRead.Incomplete;
                }
                if (!quoted && body.ToString().IndexOfAny(['$', '`', '\\']) >= 0)
                {
                    return ShellRead.Refused($"an unquoted here-document (<<{delimiter}) whose body the shell would expand");
                }
                _hereDocument = body.ToString();
            }
            _pendingHereDocs.Clear();
            return _i < text.Length ? ShellRead.Refused("a second command after the here-document") : null;
        }

        private ShellRead? EndWord()
        {
            if (!_inWord)
            {
                return null;
            }
            var word = _word.ToString();
            _word.Clear();
            var quoted = _wordQuoted;
            _inWord = _wordQuoted = false;
            switch (_expecting)
            {
                case ">" when _stdoutFile is not null:
                    return ShellRead.Refused("more than one '>' redirection");
                case ">":
                    _stdoutFile = word;
                    break;
                case "<<" when _hereDocument is not null || _pendingHereDocs.Count > 0:
                    return ShellRead.Refused("more than one here-document");
                case "<<":
                    _pendingHereDocs.Add((word, quoted));
                    break;
                default:
                    _words.Add(word);
                    break;
            }
            _expecting = null;
            return null;
        }
    }
}

/// <summary>The outcome of reading a command: complete, incomplete (it goes on on the next line) or refused (why).</summary>
internal sealed record ShellRead(ShellCommand? Command, string? Refusal)
{
    public static ShellRead Incomplete { get; } = new(null, null);

    public static ShellRead Complete(ShellCommand command) => new(command, null);

    public static ShellRead Refused(string why) => new(null, why);

    public bool IsIncomplete => Command is null && Refusal is null;
}
