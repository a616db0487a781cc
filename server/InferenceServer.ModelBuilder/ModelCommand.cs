namespace InferenceServer.ModelBuilder;

/// <summary>
/// The shape every ModelBuilder command that writes a model directory shares: <c>--help</c> prints the usage; the
/// arguments are parsed into a write; a bad argument prints the message and the usage (exit code 2); a file that
/// cannot be read or written prints why (exit code 1); otherwise each path written is printed, one a line.
/// </summary>
internal static class ModelCommand
{
    /// <summary>Runs command <paramref name="name"/>: <paramref name="parse"/> turns the arguments into the write to perform or throws <see cref="ArgumentException"/>.</summary>
    public static int Run(
        string name, string usage, IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr,
        Func<IReadOnlyList<string>, Func<IReadOnlyList<string>>> parse)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        if (args.Count > 0 && args[0] is "--help" or "-h")
        {
            stdout.Write(usage);
            return 0;
        }

        Func<IReadOnlyList<string>> write;
        try
        {
            write = parse(args);
        }
        catch (ArgumentException e)
        {
            stderr.WriteLine($"{name}: {e.Message}");
            stderr.Write(usage);
            return 2;
        }

        IReadOnlyList<string> written;
        try
        {
            written = write();
        }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine($"{name}: {e.Message}");
            return 1;
        }

        foreach (string path in written)
        {
            stdout.WriteLine(path);
        }

        return 0;
    }
}
