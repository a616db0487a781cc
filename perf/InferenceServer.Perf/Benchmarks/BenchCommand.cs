namespace InferenceServer.Perf;

/// <summary><c>bench mlp|resnet50|payload|overhead|generate|kv|genai</c>: one benchmark, every piece in this process, ratios against its targets.</summary>
internal static class BenchCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Contains("--help") || args.Contains("-h"))
        {
            Console.WriteLine(BenchOptions.Usage());
            return 0;
        }
        BenchOptions options;
        try
        {
            options = BenchOptions.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}\n\n{BenchOptions.Usage()}");
            return 2;
        }
        try
        {
            await (options.Name switch
            {
                "mlp" => MlpBenchmark.RunAsync(options),
                "resnet50" => Resnet50Benchmark.RunAsync(options),
                "payload" => PayloadBenchmark.RunAsync(options),
                "generate" => GenerateBenchmark.RunAsync(options),
                "kv" => KvBenchmark.RunAsync(options),
                "genai" => GenAiBenchmark.RunAsync(options),
                _ => OverheadBenchmark.RunAsync(options),
            }).ConfigureAwait(false);
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or TimeoutException or IOException or NotSupportedException)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }
}
