using System.Globalization;

namespace InferenceServer.Perf;

/// <summary><c>echo</c>: the bare echo server on its own (127.0.0.1), for a load generator in another process; it stops by itself.</summary>
internal static class EchoCommand
{
    public const string Usage = """
        Usage: dotnet run -c Release --project perf/InferenceServer.Perf -- echo [--http-port N] [--grpc-port N] [--duration-seconds N]

          --http-port N            REST echo port on 127.0.0.1 (default: 0 = a free port, printed)
          --grpc-port N            gRPC echo port on 127.0.0.1 (default: 0 = a free port, printed)
          --duration-seconds N     stop after N seconds (default: 600; at most 86400); Ctrl+C stops it earlier
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        int http = 0, grpc = 0;
        double seconds = 600;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--help" or "-h")
            {
                Console.WriteLine(Usage);
                return 0;
            }
            if (i + 1 >= args.Length || !double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0)
            {
                Console.Error.WriteLine($"error: {args[i]} needs a non-negative number\n\n{Usage}");
                return 2;
            }
            i++;
            switch (args[i - 1])
            {
                case "--http-port" when value <= 65535: http = (int)value; break;
                case "--grpc-port" when value <= 65535: grpc = (int)value; break;
                case "--duration-seconds" when value is > 0 and <= 86400: seconds = value; break;
                default:
                    Console.Error.WriteLine($"error: unknown option or value out of range: {args[i - 1]} {args[i]}\n\n{Usage}");
                    return 2;
            }
        }
        await using var echo = await EchoServer.StartAsync(http, grpc);
        Console.WriteLine($"echo: REST {echo.Http} (POST /v2/models/NAME/infer), gRPC {echo.Grpc} (ModelInfer); stopping in {seconds} s or on Ctrl+C");
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        try
        {
            await Task.Delay(Timeout.Infinite, stop.Token);
        }
        catch (OperationCanceledException)
        {
        }
        return 0;
    }
}
