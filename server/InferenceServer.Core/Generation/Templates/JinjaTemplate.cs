namespace InferenceServer.Generation.Templates;

/// <summary>
/// A Jinja2 template (the subset Hugging Face chat templates use), rendered as transformers renders chat templates:
/// trim_blocks and lstrip_blocks on, the loopcontrols extension, <c>{% generation %}</c>, transformers' tojson,
/// raise_exception and strftime_now, lenient Undefined, and the immutable sandbox (no list.append, dict.update).
/// Parse once, render many times; a parsed template is immutable and safe to share across threads.
/// </summary>
public sealed class JinjaTemplate
{
    private readonly IReadOnlyList<Node> _body;

    private JinjaTemplate(IReadOnlyList<Node> body)
    {
        _body = body;
    }

    /// <summary>Parses <paramref name="source"/>; throws <see cref="JinjaException"/> (with its line) on a syntax error.</summary>
    public static JinjaTemplate Parse(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        try
        {
            return new JinjaTemplate(JinjaParser.Parse(source));
        }
        catch (InsufficientExecutionStackException)
        {
            throw new JinjaException("the template nests too deeply");
        }
        catch (Exception e) when (e is ArgumentException or FormatException or OverflowException)
        {
            throw new JinjaException($"the template does not parse: {e.Message}");
        }
    }

    /// <summary>
    /// Renders with <paramref name="variables"/> (string, bool, numbers, null, lists, <see cref="JinjaDict"/> or other
    /// dictionaries, <see cref="System.Text.Json.JsonElement"/>). Throws <see cref="JinjaRaisedException"/> for the
    /// template's raise_exception(message) and <see cref="JinjaException"/> for any other failure; the output is capped
    /// at 10 M characters and loops at 10 M iterations. <paramref name="clock"/> is strftime_now's clock (local time).
    /// </summary>
    public string Render(IReadOnlyDictionary<string, object?> variables, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(variables);
        try
        {
            return new JinjaRenderer(clock ?? TimeProvider.System).Render(_body, variables);
        }
        catch (InsufficientExecutionStackException)
        {
            throw new JinjaException("the template nests too deeply");
        }
        catch (OverflowException)
        {
            throw new JinjaException("integer overflow (the engine's integers are 64-bit)");
        }
        catch (Exception e) when (e is not JinjaException and (ArgumentException or InvalidOperationException or InvalidCastException or IndexOutOfRangeException or FormatException or KeyNotFoundException or NullReferenceException))
        {
            // A template that reaches an edge the engine does not model fails like any template error.
            throw new JinjaException($"the template failed: {e.Message}");
        }
    }
}
