using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace InferenceServer.Perf;

/// <summary>
/// A server in a process of its own on 127.0.0.1 (a published inference server, or this program's <c>echo</c>), so
/// that the load generator's CPU and garbage collections are not the server's. Its output goes to a log file; disposing
/// stops it (this process's own child, by its id).
/// </summary>
internal sealed class ChildServer : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);
    private readonly Process _process;

    private ChildServer(string name, Process process, string log, Uri http, Uri grpc, Uri? metrics)
    {
        Name = name;
        _process = process;
        Log = log;
        Http = http;
        Grpc = grpc;
        Metrics = metrics;
    }

    public string Name { get; }

    public string Log { get; }

    public Uri Http { get; }

    public Uri Grpc { get; }

    public Uri? Metrics { get; }

    public int ProcessId => _process.Id;

    /// <summary>The published server <paramref name="dll"/> over <paramref name="repository"/>, on free loopback ports.</summary>
    public static Task<ChildServer> StartServerAsync(string name, string dll, string repository, string logDirectory, string logLevel)
    {
        int http = FreePort(), grpc = FreePort(), metrics = FreePort();
        return StartAsync(name, "dotnet",
            [dll, "--model-repository", repository, "--bind-address", "127.0.0.1", "--http-port", $"{http}", "--grpc-port", $"{grpc}", "--metrics-port", $"{metrics}"],
            logDirectory, http, grpc, metrics,
            // The access log runs as deployed, to a file, like the in-process server's to Stream.Null.
            new Dictionary<string, string> { ["Logging__LogLevel__Default"] = logLevel, ["INFERENCE_LIBSTDCXX_COMPAT_DIR"] = CompatDir() });
    }

    /// <summary>This program's bare echo (<c>echo</c>) in a process of its own.</summary>
    public static Task<ChildServer> StartEchoAsync(string logDirectory)
    {
        int http = FreePort(), grpc = FreePort();
        var self = typeof(ChildServer).Assembly.Location;
        return StartAsync("echo", "dotnet", [self, "echo", "--http-port", $"{http}", "--grpc-port", $"{grpc}", "--duration-seconds", "86400"],
            logDirectory, http, grpc, null, new Dictionary<string, string> { ["INFERENCE_LIBSTDCXX_COMPAT_DIR"] = CompatDir() });
    }

    public static string CompatDir() =>
        global::InferenceServer.Backends.TorchSharp.LibStdCxxCompat.CompatDirectory ?? Path.Combine(ServerBuild.RepositoryRoot(), ".tools", "libstdcxx-compat");

    private static async Task<ChildServer> StartAsync(string name, string file, IReadOnlyList<string> args, string logDirectory, int http, int grpc, int? metrics, IReadOnlyDictionary<string, string> env)
    {
        var log = Path.Combine(logDirectory, $"{name}.log");
        var info = ChildEnvironment.StartInfo(file);
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        foreach (var (k, v) in env)
        {
            info.Environment[k] = v;
        }
        // The child writes its output straight to the log file (a shell redirects it and execs the child, which keeps
        // the process id). Read through this process, the server's access log (one line per request on stdout) cost
        // the load generator a string and a write per request, CPU and allocation it then reported as its own.
        info.RedirectStandardOutput = false;
        info.RedirectStandardError = false;
        var command = info.FileName;
        var arguments = info.ArgumentList.ToArray();
        info.FileName = "/bin/sh";
        info.ArgumentList.Clear();
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("exec \"$0\" \"$@\" >>\"$INFERENCE_PERF_CHILD_LOG\" 2>&1");
        info.ArgumentList.Add(command);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }
        info.Environment["INFERENCE_PERF_CHILD_LOG"] = log;
        var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {name}");
        CpuSample.Children[process.Id] = true;
        var child = new ChildServer(name, process, log, new Uri($"http://127.0.0.1:{http}/"), new Uri($"http://127.0.0.1:{grpc}/"), metrics is int m ? new Uri($"http://127.0.0.1:{m}/") : null);
        try
        {
            await child.WaitListeningAsync().ConfigureAwait(false);
        }
        catch
        {
            await child.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        BenchSession.Log($"{name}: pid {process.Id}, REST {child.Http}, gRPC {child.Grpc}{(child.Metrics is { } mu ? $", metrics {mu}" : "")}, log {log}");
        return child;
    }

    /// <summary>Waits (bounded) until the gRPC port accepts connections, or fails when the process has exited.</summary>
    private async Task WaitListeningAsync()
    {
        var started = Stopwatch.GetTimestamp();
        while (Stopwatch.GetElapsedTime(started) < StartTimeout)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode} at start-up; see {Log}");
            }
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(IPAddress.Loopback, Grpc.Port).ConfigureAwait(false);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100).ConfigureAwait(false);
            }
        }
        throw new TimeoutException($"{Name} did not listen on {Grpc} within {StartTimeout}; see {Log}");
    }

    /// <summary>A free loopback port (the OS's choice; released at once, so another process could take it first: start-up then fails and says so).</summary>
    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                BenchSession.Log($"{Name} (pid {_process.Id}) did not exit within 30 s");
            }
        }
        CpuSample.Children.TryRemove(_process.Id, out _);
        _process.Dispose();
    }
}
