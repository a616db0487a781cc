using InferenceServer.Hosting;

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
