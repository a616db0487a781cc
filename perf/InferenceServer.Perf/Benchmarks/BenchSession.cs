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
    private readonly List<ChildServer> _children = [];
    private string? _workDirectory;

    private BenchSession(BenchOptions options, TempRepository repository, ServerTarget server, EchoServer? echo, Uri echoHttp, Uri echoGrpc, BenchResults results)
    {
        Options = options;
        _repository = repository;
        Server = server;
        Echo = echo;
        EchoConnection = new Connection(echoHttp, echoGrpc, options.Connections);
        Results = results;
        Sides = [new ServerSide("server", server)];
    }

    /// <summary>
    /// The servers under test: the in-process server (<c>server</c>); out of process, the current tree's published
    /// server (<c>server</c>), or with <c>--baseline</c> the baseline and the current build (<c>baseline</c>, <c>current</c>).
    /// </summary>
    public IReadOnlyList<ServerSide> Sides { get; private set; }

    /// <summary>A temporary folder of this session (h2load's body files and logs, the child servers' logs).</summary>
    public string WorkDirectory => _workDirectory ??= Directory.CreateDirectory(Path.Combine(_repository.Root, "work")).FullName;

    public BenchOptions Options { get; }

    public ServerTarget Server { get; }

    /// <summary>The echo's process when it runs as a child of this one (out of process); null in process.</summary>
    public int? EchoProcessId { get; private init; }

    /// <summary>The in-process echo; null when the echo runs in a process of its own (<see cref="EchoConnection"/> reaches either).</summary>
    public EchoServer? Echo { get; }

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
        if (options.OutOfProcess)
        {
            return await StartOutOfProcessAsync(options, results, write, models).ConfigureAwait(false);
        }
        var repository = new TempRepository();
        ServerTarget? server = null;
        try
        {
            write(repository);
            server = await ServerTarget.StartInProcessAsync(repository.Models, options.ServerLogLevel, arguments: serverArguments, grpcConnections: options.Connections).ConfigureAwait(false);
            foreach (var model in models)
            {
                await server.WaitForModelAsync(model).ConfigureAwait(false);
            }
            var echo = await EchoServer.StartAsync().ConfigureAwait(false);
            Log($"{server.Description}; echo REST {echo.Http}, gRPC {echo.Grpc}; models in {repository.Root}");
            return new BenchSession(options, repository, server, echo, echo.Http, echo.Grpc, results);
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

    /// <summary>
    /// Every server in a process of its own: publishes the current tree's server (or takes <c>--server-build</c>), and
    /// with <c>--baseline</c> the baseline's; starts the echo (this program's <c>echo</c>) and each server over the same
    /// generated repository on free loopback ports, and waits for <paramref name="models"/> on each.
    /// </summary>
    private static async Task<BenchSession> StartOutOfProcessAsync(BenchOptions options, BenchResults results, Action<TempRepository> write, IReadOnlyList<string> models)
    {
        var repository = new TempRepository();
        var children = new List<ChildServer>();
        var targets = new List<ServerSide>();
        try
        {
            write(repository);
            var work = Directory.CreateDirectory(Path.Combine(repository.Root, "work")).FullName;
            var root = ServerBuild.RepositoryRoot();
            var compat = ChildServer.CompatDir();
            var builds = new List<(string Name, string Dll, string Label)>();
            if (options.Baseline is { } baseline)
            {
                var (dll, label) = await ServerBuild.BaselineAsync(baseline, root, work, compat).ConfigureAwait(false);
                builds.Add(("baseline", dll, label));
            }
            var currentDll = options.ServerBuild is { } published
                ? Path.Combine(published, "InferenceServer.dll")
                : await ServerBuild.PublishAsync(root, Path.Combine(work, "current"), compat).ConfigureAwait(false);
            builds.Add((options.Baseline is null ? "server" : "current", currentDll, options.ServerBuild is null ? $"this tree ({root})" : $"published folder {options.ServerBuild}"));
            foreach (var (name, dll, label) in builds)
            {
                var child = await ChildServer.StartServerAsync(name, dll, repository.Models, work, options.ServerLogLevel).ConfigureAwait(false);
                children.Add(child);
                var target = ServerTarget.External($"{name}: {label}, pid {child.ProcessId}", repository.Models, child.Http, child.Grpc, child.Metrics, options.Connections, child.ProcessId);
                targets.Add(new ServerSide(name, target));
                foreach (var model in models)
                {
                    await target.WaitForModelAsync(model).ConfigureAwait(false);
                }
            }
            var echo = await ChildServer.StartEchoAsync(work).ConfigureAwait(false);
            children.Add(echo);
            foreach (var t in targets)
            {
                Log(t.Target.Description);
            }
            Log($"echo REST {echo.Http}, gRPC {echo.Grpc} (pid {echo.ProcessId}); models in {repository.Root}");
            var session = new BenchSession(options, repository, targets[^1].Target, null, echo.Http, echo.Grpc, results) { Sides = targets, EchoProcessId = echo.ProcessId };
            session._children.AddRange(children);
            session._workDirectory = work;
            return session;
        }
        catch
        {
            foreach (var t in targets)
            {
                await t.Target.DisposeAsync().ConfigureAwait(false);
            }
            foreach (var child in children)
            {
                await child.DisposeAsync().ConfigureAwait(false);
            }
            repository.Dispose();
            throw;
        }
    }

    /// <summary>The closed-loop client for <paramref name="protocol"/> on <paramref name="connection"/>: for gRPC the one <c>--grpc-client</c> chose.</summary>
    public ILoadClient Client(Connection connection, string protocol, string model, IReadOnlyList<InputTensor> inputs) =>
        connection.CreateLoadClient(protocol, model, inputs, Options.GrpcClient);

    /// <summary>
    /// Closed loop on <paramref name="client"/>; <paramref name="model"/> (a server cell) adds its statistics (from
    /// <paramref name="target"/>, default the server) to the profile. The client's success count is checked against
    /// the target's own: the model's statistics for a server cell, the echo's answered gRPC calls for a gRPC echo cell.
    /// </summary>
    public async Task<Measurement> ClosedAsync(CellInfo cell, ILoadClient client, string? model, double seconds, ServerTarget? target = null)
    {
        var stats = (target ?? Server).Grpc;
        // The first time a cell runs it warms up longer: the transport's code (Kestrel, HTTP/2, protobuf) reaches its
        // optimised tier only after seconds of traffic on two busy cores; a short first warm-up had the echo's first
        // run at half the rate of its third.
        var warmup = _warmed.Add(cell.Name) ? Math.Max(Options.WarmupSeconds, Options.FirstWarmupSeconds) : Options.WarmupSeconds;
        if (warmup > 0)
        {
            await client.RunClosedAsync(cell.Concurrency, TimeSpan.FromSeconds(warmup), Options.MaxRequests).ConfigureAwait(false);
        }
        var before = model is null ? null : await ServerStatsDelta.SnapshotAsync(stats, model).ConfigureAwait(false);
        var echoCounted = model is null && cell.Kind == "echo" && client.Protocol == "grpc";
        var echoBefore = echoCounted ? await EchoAnsweredAsync().ConfigureAwait(false) : 0;
        var targetPid = TargetProcess(model, target);
        var targetBefore = targetPid is { } tp ? CpuSample.TicksOf(tp) : null;
        var cpu = CpuSample.Take();
        var gc = GcDelta.Take();
        var m = await client.RunClosedAsync(cell.Concurrency, TimeSpan.FromSeconds(seconds), Options.MaxRequests).ConfigureAwait(false);
        var end = CpuSample.Take();
        var targetAfter = targetPid is { } tq ? CpuSample.TicksOf(tq) : null;
        var used = end.Since(cpu);
        var gcs = GcDelta.Since(gc) with { Requests = m.Requests + m.Errors };
        var after = model is null ? null : await ServerStatsDelta.SnapshotAsync(stats, model).ConfigureAwait(false);
        var delta = ServerStatsDelta.Between(before, after);
        long? counted = delta?.Successes ?? (echoCounted ? await EchoAnsweredAsync().ConfigureAwait(false) - echoBefore : null);
        if (counted is { } own && m.Requests > own)
        {
            // The client counted more successes than the target did (its count is read after every call has ended):
            // a response the client took for a success was not one.
            var byStatus = new Dictionary<string, long>(m.ErrorsByStatus, StringComparer.Ordinal) { ["client:over-server-count"] = m.Requests - own };
            m = m with { Requests = own, Errors = m.Errors + (m.Requests - own), ErrorsByStatus = byStatus };
        }
        return Record(cell, m, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, delta)
        {
            Gc = gcs,
            // Only with the servers in processes of their own is this process's CPU the client's alone.
            ClientCpuMicrosecondsPerRequest = Options.OutOfProcess && m.Requests + m.Errors > 0 ? (end.SelfTicks - cpu.SelfTicks) / CpuSample.TicksPerSecond * 1e6 / (m.Requests + m.Errors) : null,
            TargetCpuMicrosecondsPerRequest = CpuSample.MicrosecondsPerRequest(targetBefore, targetAfter, counted ?? m.Requests + m.Errors),
            Detail = counted is { } c ? $"{(client.Protocol == "grpc" ? $"{Options.GrpcClient} gRPC client" : client.Protocol)}: {m.Requests + m.Errors} done, target counted {c} successes" : null,
        });
    }

    /// <summary>
    /// h2load (an outside client, a process of its own) on the gRPC <paramref name="client"/>'s request: a warm-up run, then a
    /// measured run of <paramref name="seconds"/>. Its HTTP 2xx count is not a gRPC success count, so the successes
    /// counted are the smaller of its 2xx and the target's own count over the measured run (the model's statistics on
    /// a server, the echo's answered calls on the echo); any 2xx beyond that counts as the error <c>grpc:unverified</c>.
    /// </summary>
    public async Task<Measurement> H2LoadAsync(CellInfo cell, IGrpcRequest client, Uri grpc, string? model, ServerTarget? target, double seconds)
    {
        var body = Path.Combine(WorkDirectory, $"body-{cell.Name.GetHashCode():x8}.bin");
        if (!File.Exists(body))
        {
            await File.WriteAllBytesAsync(body, client.FramedRequest()).ConfigureAwait(false);
        }
        var warmup = _warmed.Add(cell.Name) ? Math.Max(Options.WarmupSeconds, Options.FirstWarmupSeconds) : Options.WarmupSeconds;
        if (warmup > 0)
        {
            await H2Load.RunAsync(grpc, body, cell.Concurrency, Options.Connections, warmup, WorkDirectory).ConfigureAwait(false);
        }
        var stats = model is null ? null : (target ?? Server).Grpc;
        var before = stats is null ? null : await ServerStatsDelta.SnapshotAsync(stats, model!).ConfigureAwait(false);
        var echoBefore = stats is null ? await EchoAnsweredAsync().ConfigureAwait(false) : 0;
        var targetPid = TargetProcess(model, target);
        var targetBefore = targetPid is { } tp ? CpuSample.TicksOf(tp) : null;
        var cpu = CpuSample.Take();
        var r = await H2Load.RunAsync(grpc, body, cell.Concurrency, Options.Connections, seconds, WorkDirectory).ConfigureAwait(false);
        var end = CpuSample.Take();
        var targetAfter = targetPid is { } tq ? CpuSample.TicksOf(tq) : null;
        var used = end.Since(cpu);
        var after = stats is null ? null : await ServerStatsDelta.SnapshotAsync(stats, model!).ConfigureAwait(false);
        var delta = ServerStatsDelta.Between(before, after);
        var counted = delta?.Successes ?? await EchoAnsweredAsync().ConfigureAwait(false) - echoBefore;
        var successes = Math.Min(r.Succeeded2xx, counted);
        var errors = new Dictionary<string, long>(StringComparer.Ordinal);
        void Add(string status, long n)
        {
            if (n > 0)
            {
                errors[status] = n;
            }
        }
        Add("grpc:unverified", r.Succeeded2xx - successes);
        Add("http:non-2xx", r.NonSuccessStatus);
        Add("h2load:failed", r.Failed - r.NonSuccessStatus);
        Add("h2load:errored", r.Errored);
        if (delta is not null)
        {
            Add("server:failed", delta.Failures);
        }
        // Latencies: h2load's HTTP-200 responses, the unverified ones removed from the top (they are the fast errors, if any).
        var latencies = r.LatenciesMs.Length > successes ? r.LatenciesMs[..(int)successes] : r.LatenciesMs;
        var m = new Measurement(successes, errors.Values.Sum(), r.Seconds, latencies, errors.Count == 0 ? null : $"h2load 2xx {r.Succeeded2xx}, target's own success count {counted}")
        {
            ErrorsByStatus = errors,
        };
        return Record(cell, m, new Profile(used.Machine, used.Process, ThreadPool.ThreadCount, delta)
        {
            ClientCpuMicrosecondsPerRequest = r.Done > 0 ? (end.ReapedTicks - cpu.ReapedTicks) / CpuSample.TicksPerSecond * 1e6 / r.Done : null,
            // Per request the target counted (h2load does not wait for the calls in flight when it stops).
            TargetCpuMicrosecondsPerRequest = CpuSample.MicrosecondsPerRequest(targetBefore, targetAfter, counted),
            Detail = $"h2load: {r.Done} done, {r.Succeeded2xx} 2xx, target counted {counted} successes; {r.Command}",
        });
    }

    /// <summary>The process serving a cell: the echo's for an echo cell (no model), else the server's; null in process.</summary>
    private int? TargetProcess(string? model, ServerTarget? target) => model is null ? EchoProcessId : (target ?? Server).ProcessId;

    /// <summary>The echo's count of answered gRPC calls (GET /echo/stats on its REST port).</summary>
    private async Task<long> EchoAnsweredAsync()
    {
        using var json = System.Text.Json.JsonDocument.Parse(await EchoConnection.Http.GetStringAsync("echo/stats").ConfigureAwait(false));
        return json.RootElement.GetProperty("grpc_model_infer_ok").GetInt64();
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
        if (Echo is not null)
        {
            await Echo.DisposeAsync().ConfigureAwait(false);
        }
        foreach (var side in Sides)
        {
            await side.Target.DisposeAsync().ConfigureAwait(false);
        }
        foreach (var child in _children)
        {
            await child.DisposeAsync().ConfigureAwait(false);
        }
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
                    await ClosedAsync(EchoCell(protocol, c), Client(EchoConnection, protocol, echoModel, [row]), null, seconds).ConfigureAwait(false);
                    foreach (var model in models)
                    {
                        var cell = new CellInfo($"{model} {protocol} c={c}", "server", protocol, c, model);
                        await ClosedAsync(cell, Client(Server.Connection, protocol, model, [row]), model, seconds).ConfigureAwait(false);
                    }
                }
            }
        }
        return engineCells;
    }
}

/// <summary>A server under test and the name its cells carry (<c>server</c>, or <c>baseline</c> / <c>current</c>).</summary>
internal sealed record ServerSide(string Name, ServerTarget Target);
