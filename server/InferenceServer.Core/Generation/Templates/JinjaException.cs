namespace InferenceServer.Generation.Templates;

/// <summary>A template that does not parse (with its line number) or fails while rendering.</summary>
public class JinjaException : Exception
{
    /// <summary>Creates the exception.</summary>
    public JinjaException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with the 1-based template line it refers to.</summary>
    public JinjaException(string message, int line) : base($"{message} (line {line})")
    {
        Line = line;
    }

    /// <summary>The 1-based template line, when known.</summary>
    public int? Line { get; }
}

/// <summary>The template called <c>raise_exception(message)</c>; <see cref="Exception.Message"/> is that message.</summary>
public sealed class JinjaRaisedException : JinjaException
{
    /// <summary>Creates the exception.</summary>
    public JinjaRaisedException(string message) : base(message)
    {
    }
}
