using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace InferenceServer.Tests.Packaging;

/// <summary>
/// One Dockerfile instruction, continuation lines joined: its keyword (upper case), leading <c>--name=value</c> flags,
/// the rest (<see cref="Body"/>) and, when the body is a JSON array of strings (exec form), its elements.
/// </summary>
internal sealed record DockerInstruction(string Keyword, IReadOnlyDictionary<string, string> Flags, string Body, int Line)
{
    /// <summary>The exec form's arguments, or null for the shell form.</summary>
    public IReadOnlyList<string>? ExecForm => ParseExecForm(Body);

    /// <summary>The body split into words, quotes honoured (ENV, EXPOSE, COPY, VOLUME, ...).</summary>
    public IReadOnlyList<string> Words => Dockerfile.SplitWords(Body);

    public override string ToString() => $"line {Line}: {Keyword} {Body}";

    internal static IReadOnlyList<string>? ParseExecForm(string body)
    {
        var trimmed = body.Trim();
        if (!trimmed.StartsWith('['))
        {
            return null;
        }
        try
        {
            // Docker falls back to the shell form when the array is not valid JSON; so do we.
            return JsonSerializer.Deserialize<string[]>(trimmed);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>One build stage: <c>FROM image [AS name]</c> and the instructions up to the next FROM.</summary>
internal sealed record DockerStage(int Index, string From, string? Name, IReadOnlyList<DockerInstruction> Instructions)
{
    public IEnumerable<DockerInstruction> All(string keyword) => Instructions.Where(i => i.Keyword == keyword);

    public override string ToString() => Name is null ? $"stage {Index} (FROM {From})" : $"stage {Name} (FROM {From})";
}

/// <summary>
/// A small Dockerfile parser, enough to check the shipped one without a Docker engine: comments and parser
/// directives, line continuations (the default escape character), global ARGs before the first FROM, stages, flags,
/// exec (JSON) and shell forms, and <c>$VAR</c> / <c>${VAR}</c> / <c>${VAR:-default}</c> / <c>${VAR:+alt}</c>
/// substitution. <see cref="For"/> resolves which stages build an image for given build arguments.
/// </summary>
internal sealed class Dockerfile
{
    private static readonly Regex Variable = new(@"\$(?:\{(?<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?<op>:[-+])(?<word>[^}]*))?\}|(?<name>[A-Za-z_][A-Za-z0-9_]*))", RegexOptions.Compiled);

    private Dockerfile(IReadOnlyList<DockerInstruction> globalArgs, IReadOnlyList<DockerStage> stages)
    {
        GlobalArgs = globalArgs;
        Stages = stages;
    }

    /// <summary>The ARG instructions before the first FROM (the only ones FROM lines can use).</summary>
    public IReadOnlyList<DockerInstruction> GlobalArgs { get; }

    public IReadOnlyList<DockerStage> Stages { get; }

    /// <summary>The global ARGs' defaults.</summary>
    public IReadOnlyDictionary<string, string> GlobalArgDefaults =>
        GlobalArgs.SelectMany(a => a.Words).Select(ParseAssignment).ToDictionary(p => p.Key, p => p.Value ?? "");

    public static Dockerfile Load(string path) => Parse(File.ReadAllText(path));

    public static Dockerfile Parse(string text)
    {
        var instructions = new List<DockerInstruction>();
        var lines = text.Replace("\r\n", "\n").Split('\n');
        var pending = new StringBuilder();
        var start = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var trimmed = line.Trim();
            // Comment lines (and parser directives, which are comments in form) are dropped, inside a continuation too.
            if (trimmed.StartsWith('#') || (trimmed.Length == 0 && pending.Length > 0))
            {
                continue;
            }
            if (trimmed.Length == 0)
            {
                continue;
            }
            if (pending.Length == 0)
            {
                start = i + 1;
            }
            var end = line.TrimEnd();
            if (end.EndsWith('\\'))
            {
                pending.Append(end[..^1]).Append(' ');
                continue;
            }
            pending.Append(end);
            instructions.Add(ParseInstruction(pending.ToString(), start));
            pending.Clear();
        }
        if (pending.Length > 0)
        {
            throw new FormatException($"line {start}: the file ends inside a line continuation");
        }

        var globalArgs = new List<DockerInstruction>();
        var stages = new List<DockerStage>();
        List<DockerInstruction>? current = null;
        (string From, string? Name) header = ("", null);
        foreach (var instruction in instructions)
        {
            if (instruction.Keyword == "FROM")
            {
                if (current is not null)
                {
                    stages.Add(new DockerStage(stages.Count, header.From, header.Name, current));
                }
                var words = instruction.Words;
                header = words.Count switch
                {
                    1 => (words[0], null),
                    3 when words[1].Equals("AS", StringComparison.OrdinalIgnoreCase) => (words[0], words[2]),
                    _ => throw new FormatException($"{instruction}: expected FROM image [AS name]"),
                };
                current = [];
            }
            else if (current is null)
            {
                if (instruction.Keyword != "ARG")
                {
                    throw new FormatException($"{instruction}: only ARG may come before the first FROM");
                }
                globalArgs.Add(instruction);
            }
            else
            {
                current.Add(instruction);
            }
        }
        if (current is null)
        {
            throw new FormatException("no FROM instruction");
        }
        stages.Add(new DockerStage(stages.Count, header.From, header.Name, current));
        return new Dockerfile(globalArgs, stages);
    }

    /// <summary>The stage named <paramref name="name"/> (stage names are case-insensitive).</summary>
    public DockerStage Stage(string name) =>
        Stages.SingleOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new InvalidOperationException($"no stage named {name}; stages: {string.Join(", ", Stages)}");

    /// <summary>The image built with <paramref name="buildArgs"/> (over the global ARG defaults): the last stage and the stages it is FROM.</summary>
    public DockerImage For(IReadOnlyDictionary<string, string> buildArgs)
    {
        var args = new Dictionary<string, string>(GlobalArgDefaults);
        foreach (var (key, value) in buildArgs)
        {
            args[key] = value;
        }
        var chain = new List<DockerStage>();
        var stage = Stages[^1];
        while (true)
        {
            chain.Insert(0, stage);
            var from = Expand(stage.From, args);
            var parent = Stages.Take(stage.Index).LastOrDefault(s => string.Equals(s.Name, from, StringComparison.OrdinalIgnoreCase));
            if (parent is null)
            {
                return new DockerImage(from, chain, args);
            }
            stage = parent;
        }
    }

    /// <summary>Substitutes <c>$VAR</c>, <c>${VAR}</c>, <c>${VAR:-default}</c> and <c>${VAR:+alt}</c>; an unknown variable is empty.</summary>
    public static string Expand(string text, IReadOnlyDictionary<string, string> variables) =>
        Variable.Replace(text, m =>
        {
            var set = variables.TryGetValue(m.Groups["name"].Value, out var value) && value.Length > 0;
            return m.Groups["op"].Value switch
            {
                ":-" => set ? value! : m.Groups["word"].Value,
                ":+" => set ? m.Groups["word"].Value : "",
                _ => value ?? "",
            };
        });

    /// <summary><c>KEY=VALUE</c> (or a bare <c>KEY</c>: null value).</summary>
    public static KeyValuePair<string, string?> ParseAssignment(string word)
    {
        var eq = word.IndexOf('=');
        return eq < 0 ? new(word, null) : new(word[..eq], word[(eq + 1)..]);
    }

    /// <summary>Splits on whitespace; single and double quotes group and are removed; a backslash escapes the next character.</summary>
    public static IReadOnlyList<string> SplitWords(string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        char quote = '\0';
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quote != '\0')
            {
                if (c == quote)
                {
                    quote = '\0';
                }
                else if (c == '\\' && quote == '"' && i + 1 < text.Length)
                {
                    word.Append(text[++i]);
                }
                else
                {
                    word.Append(c);
                }
            }
            else if (c is '"' or '\'')
            {
                quote = c;
                inWord = true;
            }
            else if (c == '\\' && i + 1 < text.Length)
            {
                word.Append(text[++i]);
                inWord = true;
            }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                }
            }
            else
            {
                word.Append(c);
                inWord = true;
            }
        }
        if (quote != '\0')
        {
            throw new FormatException($"unterminated {quote} quote in: {text}");
        }
        if (inWord)
        {
            words.Add(word.ToString());
        }
        return words;
    }

    private static DockerInstruction ParseInstruction(string text, int line)
    {
        text = text.Trim();
        var space = text.IndexOfAny([' ', '\t']);
        var keyword = (space < 0 ? text : text[..space]).ToUpperInvariant();
        var rest = space < 0 ? "" : text[(space + 1)..].TrimStart();
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        while (rest.StartsWith("--", StringComparison.Ordinal))
        {
            var end = rest.IndexOfAny([' ', '\t']);
            var flag = end < 0 ? rest : rest[..end];
            var (name, value) = ParseAssignment(flag[2..]);
            flags[name] = value ?? "true";
            rest = end < 0 ? "" : rest[(end + 1)..].TrimStart();
        }
        return new DockerInstruction(keyword, flags, rest, line);
    }
}

/// <summary>What one build of the Dockerfile produces: the external base image and the stages from it to the last.</summary>
internal sealed record DockerImage(string BaseImage, IReadOnlyList<DockerStage> Chain, IReadOnlyDictionary<string, string> Args)
{
    private IEnumerable<DockerInstruction> All(string keyword) => Chain.SelectMany(s => s.All(keyword));

    /// <summary>The image's environment (ENV of every stage in the chain, later ones winning; values expanded).</summary>
    public IReadOnlyDictionary<string, string> Environment
    {
        get
        {
            var env = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var instruction in All("ENV"))
            {
                var words = instruction.Words;
                if (words.Count == 2 && !words[0].Contains('='))
                {
                    env[words[0]] = words[1]; // the legacy ENV key value form
                    continue;
                }
                foreach (var word in words)
                {
                    var (key, value) = Dockerfile.ParseAssignment(word);
                    env[key] = Dockerfile.Expand(value ?? throw new FormatException($"{instruction}: {key} has no value"), env);
                }
            }
            return env;
        }
    }

    /// <summary>The last USER (null: root).</summary>
    public string? User => All("USER").LastOrDefault()?.Words.Single();

    public IReadOnlyList<string> ExposedPorts => All("EXPOSE").SelectMany(i => i.Words).ToList();

    public IReadOnlyList<string> Volumes => All("VOLUME").SelectMany(i => i.ExecForm ?? i.Words).ToList();

    public DockerInstruction? Entrypoint => All("ENTRYPOINT").LastOrDefault();

    public DockerInstruction? Healthcheck => All("HEALTHCHECK").LastOrDefault();

    public DockerInstruction? Workdir => All("WORKDIR").LastOrDefault();

    public IReadOnlyList<DockerInstruction> Copies => All("COPY").Concat(All("ADD")).ToList();

    public IReadOnlyDictionary<string, string> Labels =>
        All("LABEL").SelectMany(i => i.Words).Select(Dockerfile.ParseAssignment).ToDictionary(p => p.Key, p => Dockerfile.Expand(p.Value ?? "", Args));
}
