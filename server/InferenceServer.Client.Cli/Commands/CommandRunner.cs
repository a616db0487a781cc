using System.CommandLine;

namespace InferenceServer.Client.Cli.Commands;

/// <summary>Runs a command's body with a connection, turning every failure into a message and an exit code.</summary>
internal static class CommandRunner
{
    public static async Task<int> RunAsync(ParseResult result, CommonOptions common, CancellationToken cancellationToken,
        Func<ServerConnection, TextWriter, TextWriter, Task<int>> body, bool binary = false)
    {
        var output = result.InvocationConfiguration.Output;
        var error = result.InvocationConfiguration.Error;
        try
        {
            await using var connection = new ServerConnection(common.Settings(result), binary);
            return await body(connection, output, error);
        }
        catch (CliInputException e)
        {
            await error.WriteLineAsync($"error: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await error.WriteLineAsync("error: cancelled");
            return ExitCodes.Failure;
        }
#pragma warning disable CA1031 // The tool's last line of defence: a message, never a stack trace.
        catch (Exception e)
#pragma warning restore CA1031
        {
            await error.WriteLineAsync($"error: {ServerConnection.FailureMessage(e) ?? e.Message}");
            return ExitCodes.Failure;
        }
    }
}
