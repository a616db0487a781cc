using System.CommandLine;

namespace InferenceServer.MeshCtl;

/// <summary>meshctl's commands: <c>canary start|status|promote|abort</c> and <c>ratelimit sync</c>.</summary>
internal static class MeshCommandLine
{
    public static RootCommand Build()
    {
        var root = new RootCommand("meshctl: progressive canary with metric analysis, and replica-aware rate limits, for the inference server on Istio");
        root.Subcommands.Add(CanaryCommands.Build());
        root.Subcommands.Add(RateLimitCommands.Build());
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var configuration = new InvocationConfiguration { Output = output ?? Console.Out, Error = error ?? Console.Error };
        var parsed = Build().Parse(args);
        if (parsed.Errors.Count > 0 && !args.Any(a => a is "-h" or "--help" or "-?"))
        {
            // Bad input (an unknown option, a missing value) is exit code 2 with the parser's message, like every
            // other bad input of meshctl.
            foreach (var parseError in parsed.Errors)
            {
                configuration.Error.WriteLine($"meshctl: {parseError.Message}");
            }
            configuration.Error.WriteLine("(meshctl --help lists the commands and options)");
            return 2;
        }
        return await parsed.InvokeAsync(configuration);
    }
}
