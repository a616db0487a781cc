using System.CommandLine;

namespace InferenceServer.MeshCtl;

/// <summary>meshctl's commands: <c>canary start|status|promote|abort</c> and <c>ratelimit sync</c>.</summary>
internal static class MeshCommandLine
{
    public static RootCommand Build()
    {
        var root = new RootCommand("meshctl: progressive canary with metric analysis, and replica-aware rate limits, for the inference server on Istio");
        root.Subcommands.Add(RateLimitCommands.Build());
        return root;
    }

    public static async Task<int> RunAsync(string[] args, TextWriter? output = null, TextWriter? error = null)
    {
        var configuration = new InvocationConfiguration { Output = output ?? Console.Out, Error = error ?? Console.Error };
        return await Build().Parse(args).InvokeAsync(configuration);
    }
}
