using InferenceServer.Backends.TorchSharp;
using InferenceServer.Hosting;

// On a system whose libstdc++ is too old for TorchSharp (Debian 12) this does not return: see LibStdCxxCompat.
LibStdCxxCompat.ReexecIfNeeded(args);

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(CommandLine.Usage());
    return 0;
}
WebApplication app;
try
{
    app = InferenceServerApp.Create(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}\n\n{CommandLine.Usage()}");
    return 2;
}
await app.RunAsync();
return 0;
