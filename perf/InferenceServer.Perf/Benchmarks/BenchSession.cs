using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>
/// Everything one benchmark run needs in this process: the generated models in a temporary repository, the real
/// server over it, the bare echo beside it, and the measuring helpers (warm-up, measurement, profile, progress on
/// stderr). Disposing stops both servers and deletes the temporary directory.
/// </summary>
internal sealed class BenchSession : IAsyncDisposable
{
    private readonly TempRepository _repository;
    private readonly HashSet<string> _warmed = [];

    private BenchSession(BenchOptions options, TempRepository repository, ServerTarget server, EchoServer echo, BenchResults results)
    {
        Options = options;
        _repository = repository;
        Server = server;
        Echo = echo;
        EchoConnection = new Connection(echo.Http, echo.Grpc);
        Results = results;
    }

    public BenchOptions Options { get; }

    public ServerTarget Server { get; }

    public EchoServer Echo { get; }

    public Connection EchoConnection { get; }

    public BenchResults Results { get; }

    public int Run { get; set; }

    public TempRepository Repository => _repository;

    /// <summary>
    /// Writes the models (<paramref name="write"/>), starts the server (with <paramref name="serverArguments"/>, if any)
    /// and the echo, and waits for <paramref name="models"/>.
    /// </summary>
    public static async Task<BenchSession> StartAsync(
        BenchOptions options, BenchResults results, Action<TempRepository> write, IReadOnlyList<string> models, IReadOnlyList<string>? serverArguments = null)
    {
        var repository = new TempRepository();
        ServerTarget? server = null;
        try
        {
            write(repository);
            server = await ServerTarget.StartInProcessAsync(repository.Models, options.ServerLogLevel, arguments: serverArguments).ConfigureAwait(false);
            foreach (var model in models)
            {
                await server.WaitForModelAsync(model).ConfigureAwait(false);
            }
            var echo = await EchoServer.StartAsync().ConfigureAwait(false);
            Log($"{server.Description}; echo REST {echo.Http}, gRPC {echo.Grpc}; models in {repository.Root}");
            return new BenchSession(options, repository, server, echo, results);
        }
        catch
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
            repository.Dispose();
            throw;
        }
    }

    /// <summary>Closed loop on <paramref name="client"/>; <paramref name="model"/> (a server cell) adds its statistics to the profile.</summary>
    public async Task<Measurement> ClosedAsync(CellInfo cell, IInferClient client, string? model, double seconds)
    {
        // The first time a cell runs it warms up longer: the transport's code (Kestrel, HTTP/2, protobuf) reaches its
        // optimised tier only after seconds of traffic on two busy cores; a short first warm-up had the echo's first
        // run at half the rate of its third.
        var warmup = _warmed.Add(cell.Name) ? Math.Max(Options.WarmupSeconds, Options.FirstWarmupSeconds) : Options.WarmupSeconds;
        if (warmup > 0)
        {
            await LoadLoop.RunAsync(cell.Concurrency, TimeSpan.FromSeconds(warmup), Options.MaxRequests, client.InferAsync).ConfigureAwait(false);
        }
        var before = model is null ? null : await ServerStatsDelta.SnapshotAsync(Server.Grpc, model).ConfigureAwait(false);
        var cpu = CpuSample.Take();
        var gc = GcDelta.Take();
        var m = await LoadLoop.RunAsync(cell.Concurrency, TimeSpan.FromSeconds(seconds), Options.MaxRequests, client.InferAsync).ConfigureAwait(false);
        var used = CpuSample.Take().Since(cpu);
        var gcs = GcDelta.Since(gc);
        var after = model is null ? null : await ServerStatsDelta.SnapshotAsync(Server.Grpc, model).ConfigureAwait(false);
        return Record(cell, m, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, ServerStatsDelta.Between(before, after)) { Gc = gcs });
    }

    /// <summary>The engine at one batch size.</summary>
    public Measurement Engine(CellInfo cell, EngineBatchSweep engine, int batch, double seconds)
    {
        if (Options.WarmupSeconds > 0)
        {
            engine.Run(batch, TimeSpan.FromSeconds(Math.Min(Options.WarmupSeconds, seconds)), Options.MaxRequests);
        }
        var cpu = CpuSample.Take();
        var m = engine.Run(batch, TimeSpan.FromSeconds(seconds), Options.MaxRequests);
        var used = CpuSample.Take().Since(cpu);
        return Record(cell, m, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, null));
    }

    /// <summary>Adds a cell's measurement and profile to the results and prints them (and the cell's first error) on stderr.</summary>
    public Measurement Record(CellInfo cell, Measurement m, Profile profile)
    {
        Results.Add(cell, m, profile);
        Log(string.Create(CultureInfo.InvariantCulture,
            $"run {Run}/{Options.Runs} {cell.Name,-28} {m.RequestsPerSecond,9:F0} req/s {m.SamplesPerSecond,9:F0} samples/s  p50 {m.Percentile(50):F3} p99 {m.Percentile(99):F3} max {m.MaxMs:F2} ms  errors {m.ErrorSummary}  | {profile}"));
        if (m.FirstError is { } error)
        {
            Log($"  first error: {error}");
        }
        return m;
    }

    /// <summary>Prints the report, writes the JSON and Markdown files asked for.</summary>
    public void Finish(object context)
    {
        var markdown = Results.ToMarkdown();
        Console.Write(markdown);
        if (Options.Out is { } file)
        {
            File.WriteAllText(file, markdown);
            Log($"wrote {file}");
        }
        if (Options.Json is { } json)
        {
            Results.WriteJson(json, context);
            Log($"wrote {json}");
        }
    }

    public static void Log(string line) => Console.Error.WriteLine(line);

    public async ValueTask DisposeAsync()
    {
        EchoConnection.Dispose();
        await Echo.DisposeAsync().ConfigureAwait(false);
        await Server.DisposeAsync().ConfigureAwait(false);
        _repository.Dispose();
    }

    /// <summary>The bare echo's cell for a protocol and concurrency.</summary>
    public static CellInfo EchoCell(string protocol, int c) => new($"echo {protocol} c={c}", "echo", protocol, c, "bare echo of the same request");

    /// <summary>
    /// Every run of the standard sweep: each engine setting at each batch size, then for each concurrency and protocol
    /// the bare echo of the same request and each served model. Returns the engine cells' names.
    /// </summary>
    public async Task<List<string>> SweepAsync(
        IReadOnlyList<EngineBatchSweep> engines, IReadOnlyList<int> batches, double engineSeconds, IReadOnlyList<int> concurrency,
        IReadOnlyList<string> protocols, string echoModel, IReadOnlyList<string> models, InputTensor row, double seconds)
    {
        var engineCells = new List<string>();
        for (Run = 1; Run <= Options.Runs; Run++)
        {
            foreach (var engine in engines)
            {
                foreach (var b in batches)
                {
                    var cell = new CellInfo($"engine {engine.Instances}x{engine.Threads} batch {b}", "engine", "-", engine.Instances, $"{engine.Setting} sessions x intra-op threads, batch {b}");
                    Engine(cell, engine, b, engineSeconds);
                    if (Run == 1)
                    {
                        engineCells.Add(cell.Name);
                    }
                }
            }
            foreach (var c in concurrency)
            {
                foreach (var protocol in protocols)
                {
                    await ClosedAsync(EchoCell(protocol, c), EchoConnection.CreateClient(protocol, echoModel, [row]), null, seconds).ConfigureAwait(false);
                    foreach (var model in models)
                    {
                        var cell = new CellInfo($"{model} {protocol} c={c}", "server", protocol, c, model);
                        await ClosedAsync(cell, Server.CreateClient(protocol, model, [row]), model, seconds).ConfigureAwait(false);
                    }
                }
            }
        }
        return engineCells;
    }
}
