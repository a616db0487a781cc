using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using InferenceServer.Backends.TorchSharp;
using InferenceServer.Client.Cli;
using InferenceServer.Hosting;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Docs;

/// <summary>What a documented command does, as the tests run it.</summary>
internal abstract record ExampleStep;

/// <summary><c>curl ARGS</c>: the real curl binary.</summary>
internal sealed record CurlStep(IReadOnlyList<string> Arguments) : ExampleStep;

/// <summary><c>cat &gt; FILE &lt;&lt;'EOF'</c>: writes the here-document to FILE in the session's directory.</summary>
internal sealed record WriteFileStep(string File, string Content) : ExampleStep;

/// <summary>
/// The <c>infer</c> command line, as <c>dotnet run --project server/InferenceServer.Client.Cli -- ARGS</c> (from the
/// repository root) or as the installed tool <c>infer ARGS</c>: run in process (its entry point with captured output).
/// </summary>
internal sealed record InferStep(IReadOnlyList<string> Arguments) : ExampleStep;

/// <summary>What a command printed and its exit code.</summary>
internal sealed record CommandResult(int ExitCode, string Output, string Error);

/// <summary>
/// Runs the commands of a documented shell session against a test server, in one working directory (a temporary
/// one, so files the session writes stay there). The documented addresses <c>localhost:8000</c> (REST),
/// <c>localhost:8001</c> (gRPC) and <c>localhost:8002</c> (metrics) become the test server's loopback ports.
/// </summary>
internal sealed partial class ShellExampleRunner(string workDirectory, ServerEndpoints endpoints)
{
    /// <summary>The CLI's project, as a user names it from the repository root.</summary>
    public const string CliProject = "server/InferenceServer.Client.Cli";

    /// <summary>A bound against a hung command (not a timing assumption: every command answers in well under a second).</summary>
    private static readonly TimeSpan HangLimit = TimeSpan.FromMinutes(5);

    /// <summary>How the tests run <paramref name="example"/>, or why they cannot (naming the command).</summary>
    public static (ExampleStep? Step, string? Refusal) Plan(ShellExample example)
    {
        string Refuse(string why) => $"line {example.Line}: the tests do not know how to run '$ {example.Title}': {why}";
        if (example.Read.Refusal is { } syntax)
        {
            return (null, Refuse(syntax));
        }
        if (example.Read.Command is not { } command)
        {
            return (null, Refuse("the command is not complete"));
        }
        var words = command.Words.ToArray();
        var redirected = command.StdoutFile is not null || command.HereDocument is not null;
        if (words is ["curl", .. var curlArguments] && !redirected)
        {
            return (new CurlStep(curlArguments), null);
        }
        if (words is ["cat"] && command is { StdoutFile: { } file, HereDocument: { } content })
        {
            return IsInside(file)
                ? (new WriteFileStep(file, content), null)
                : (null, Refuse($"'{file}' is not a path below the current directory"));
        }
        if (words is ["dotnet", "run", "--project", var project, "--", .. var cliArguments] && !redirected)
        {
            return project.TrimEnd('/') == CliProject && File.Exists(Path.Combine(Paths.RepositoryRoot, CliProject, "InferenceServer.Client.Cli.csproj"))
                ? (new InferStep(cliArguments), null)
                : (null, Refuse($"'{project}' is not the infer command line's project ({CliProject})"));
        }
        if (words is ["infer", .. var toolArguments] && !redirected)
        {
            return (new InferStep(toolArguments), null);
        }
        return (null, Refuse(redirected
            ? "only 'cat > FILE <<EOF' may redirect or read a here-document"
            : $"no runner for '{words[0]}' (known: curl, cat > FILE <<EOF, dotnet run --project {CliProject} --, infer)"));
    }

    public Task<CommandResult> RunAsync(ExampleStep step) => step switch
    {
        CurlStep curl => CurlAsync(curl.Arguments),
        WriteFileStep write => WriteAsync(write),
        InferStep infer => InferAsync(infer.Arguments),
        _ => throw new ArgumentOutOfRangeException(nameof(step), step, "unknown step"),
    };

    /// <summary>A documented address with the test server's port in place of the documented one.</summary>
    public string Rewrite(string argument) => DocumentedAddress().Replace(argument, m => "127.0.0.1:" + (m.Groups[1].Value switch
    {
        "8000" => endpoints.HttpPort,
        "8001" => endpoints.GrpcPort,
        _ => endpoints.MetricsPort,
    }).ToString(System.Globalization.CultureInfo.InvariantCulture));

    private async Task<CommandResult> CurlAsync(IReadOnlyList<string> arguments)
    {
        var info = LibStdCxxCompat.ChildProcess("curl", "");
        info.WorkingDirectory = workDirectory;
        info.RedirectStandardOutput = info.RedirectStandardError = true;
        info.StandardOutputEncoding = info.StandardErrorEncoding = Encoding.UTF8;
        // The test's own isolation, not part of the command: no ~/.curlrc (-q must come first) and no proxy for loopback.
        info.ArgumentList.Add("-q");
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(Rewrite(argument));
        }
        foreach (var proxy in new[] { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY" })
        {
            info.Environment.Remove(proxy);
        }
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Xunit.Sdk.XunitException($"curl is not installed (Debian: apt-get install curl); the README's examples use it: {e.Message}");
        }
        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var hang = new CancellationTokenSource(HangLimit);
            try
            {
                await process.WaitForExitAsync(hang.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new Xunit.Sdk.XunitException($"curl {string.Join(' ', info.ArgumentList)} did not finish within {HangLimit}");
            }
            return new CommandResult(process.ExitCode, await output, await error);
        }
    }

    private async Task<CommandResult> WriteAsync(WriteFileStep write)
    {
        await File.WriteAllTextAsync(Path.Combine(workDirectory, write.File), write.Content);
        return new CommandResult(0, "", "");
    }

    /// <summary>
    /// The CLI in process. Its file options (<c>--json</c>, <c>--input</c>/<c>-i</c> with or without <c>NAME=</c>,
    /// <c>--input-dir</c>, <c>--output-dir</c>) take relative paths against the session's directory, as they would from
    /// the shell's current directory; without <c>--url</c> or <c>--grpc</c> it is given the test server's REST address,
    /// its default being <c>localhost:8000</c>.
    /// </summary>
    private async Task<CommandResult> InferAsync(IReadOnlyList<string> arguments)
    {
        var args = new List<string>();
        string? option = null; // a file option whose value is the next argument
        foreach (var documented in arguments)
        {
            var argument = Rewrite(documented);
            if (option is not null)
            {
                argument = InWorkDirectory(option, argument);
                option = null;
            }
            else if (FileOptions.Contains(argument))
            {
                option = argument;
            }
            else if (argument.IndexOf('=', StringComparison.Ordinal) is > 0 and var equals && FileOptions.Contains(argument[..equals]))
            {
                argument = argument[..(equals + 1)] + InWorkDirectory(argument[..equals], argument[(equals + 1)..]);
            }
            args.Add(argument);
        }
        if (!args.Any(a => a is "--url" or "--grpc" || a.StartsWith("--url=", StringComparison.Ordinal) || a.StartsWith("--grpc=", StringComparison.Ordinal)))
        {
            args.AddRange(["--url", $"http://127.0.0.1:{endpoints.HttpPort}"]);
        }
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await InferCommandLine.RunAsync([.. args], output, error).WaitAsync(HangLimit);
        return new CommandResult(code, output.ToString(), error.ToString());
    }

    private static readonly HashSet<string> FileOptions = new(StringComparer.Ordinal) { "--json", "--input", "-i", "--input-dir", "--output-dir" };

    /// <summary>A file option's value against the session's directory (for --input, the part after NAME=).</summary>
    private string InWorkDirectory(string option, string value)
    {
        var equals = option is "--input" or "-i" ? value.IndexOf('=', StringComparison.Ordinal) : -1;
        return value[..(equals + 1)] + Path.Combine(workDirectory, value[(equals + 1)..]);
    }

    private static bool IsInside(string file) =>
        !Path.IsPathRooted(file) && !file.Split('/').Contains("..") && file.Length > 0 && !file.EndsWith('/');

    [GeneratedRegex(@"\blocalhost:(8000|8001|8002)\b")]
    private static partial Regex DocumentedAddress();
}
