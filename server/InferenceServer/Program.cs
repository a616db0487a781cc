using InferenceServer.Backends.TorchSharp;
using InferenceServer.Hosting;

// On a system whose libstdc++ is too old for TorchSharp (Debian 12) this does not return: see LibStdCxxCompat.
LibStdCxxCompat.ReexecIfNeeded(args);

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(CommandLine.Usage());
    return 0;
}
if (args.Contains(HealthProbe.Flag))
{
    // The image's HEALTHCHECK: is the server on this machine live? Exit 0 or 1; the flags name the server's ports.
    try
    {
        return await HealthProbe.RunAsync(args, Console.Out, CancellationToken.None);
    }
    catch (ArgumentException e)
    {
        Console.Error.WriteLine($"error: {e.Message}\n\n{CommandLine.Usage()}");
        return 2;
    }
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
