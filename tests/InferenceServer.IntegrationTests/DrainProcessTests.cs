using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using InferenceServer.Backends.TorchSharp;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// A real server process under steady REST, gRPC and streaming load gets SIGTERM: readiness fails, requests in the drain
/// delay are served, every request accepted before the listeners close completes, later ones are turned away (503,
/// UNAVAILABLE or a refused connection), and the process exits 0. Counts are asserted, never timings.
/// </summary>
public sealed class DrainProcessTests(ITestOutputHelper output)
{
    private int _served;

    private const int MaxTokens = 4096;

    /// <summary>What became of one request.</summary>
    private enum Outcome
    {
        Served,
        Rejected,
        Refused,
        Undelivered,
        Lost,
    }

    [Fact]
    public async Task Sigterm_under_load_loses_no_accepted_request_and_exits_zero()
    {
        var repo = Paths.NewTempDirectory("drain-process");
        CopyDirectory(Path.Combine(Paths.SampleModels, "simple"), Path.Combine(repo, "simple"));
        TorchScriptRepository.Add(repo, "shakespeare", "shakespeare.pt.zip", TorchScriptRepository.ShakespeareConfig());
        var (http, grpc, metrics) = (FreePort(), FreePort(), FreePort());
        using var server = StartServer(repo, http, grpc, metrics);
        var serverOutput = new StringBuilder();
        server.OutputDataReceived += (_, e) => { lock (serverOutput) { serverOutput.AppendLine(e.Data); } };
        server.ErrorDataReceived += (_, e) => { lock (serverOutput) { serverOutput.AppendLine(e.Data); } };
        server.BeginOutputReadLine();
        server.BeginErrorReadLine();
        string Log() { lock (serverOutput) { return serverOutput.ToString(); } }
        try
        {
            using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metrics}"), Timeout = TimeSpan.FromSeconds(10) };
            await WaitUntilAsync(async () => (await TryGetStatusAsync(admin, "/v2/health/ready")) == HttpStatusCode.OK, TimeSpan.FromMinutes(3), Log);

            // A generation stream, running when the signal arrives.
            using var streamClient = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{http}"), Timeout = TimeSpan.FromMinutes(5) };
            var firstToken = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var stream = StreamAsync(streamClient, firstToken);

            // Steady load: REST and gRPC workers, each until the server turns it away for good.
            var stop = new CancellationTokenSource();
            var signalled = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            var notReady = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{grpc}");
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            var workers = new List<Task<List<(string Protocol, long Started, Outcome Outcome, string Detail)>>>();
            for (var i = 0; i < 3; i++)
            {
                workers.Add(Task.Run(() => WorkAsync("REST", () => RestInferAsync(http), stop.Token)));
                workers.Add(Task.Run(() => WorkAsync("gRPC", () => GrpcInferAsync(client), stop.Token)));
            }
            await firstToken.Task.WaitAsync(TimeSpan.FromMinutes(1));
            // Every worker is under way before the signal.
            await WaitUntilAsync(() => Task.FromResult(Volatile.Read(ref _served) >= 12), TimeSpan.FromMinutes(1), Log);

            var sent = Stopwatch.GetTimestamp();
            Assert.Equal(0, kill(server.Id, 15));
            // Readiness fails while the server still serves.
            await WaitUntilAsync(async () => (await TryGetStatusAsync(admin, "/v2/health/ready")) == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(10), Log);
            var readinessFailed = Stopwatch.GetTimestamp();

            Assert.True(server.WaitForExit(TimeSpan.FromMinutes(2)), "the server did not exit after SIGTERM:\n" + Log());
            server.WaitForExit();
            stop.CancelAfter(TimeSpan.FromSeconds(30));
            var results = (await Task.WhenAll(workers)).SelectMany(r => r).ToList();
            var (tokens, finish) = await stream;

            var log = Log();
            foreach (var group in results.GroupBy(r => r.Outcome))
            {
                output.WriteLine($"{group.Key}: {group.Count()} ({group.Count(r => r.Started > readinessFailed)} sent after readiness failed)");
            }
            output.WriteLine($"stream: {tokens} tokens, finish {finish}");
            output.WriteLine(log);
            Assert.True(server.ExitCode == 0, $"exit code {server.ExitCode}\n{log}");
            var lost = results.Where(r => r.Outcome == Outcome.Lost).ToList();
            Assert.True(lost.Count == 0, $"{lost.Count} accepted request(s) lost: {string.Join("; ", lost.Select(l => l.Detail).Distinct())}\n{log}");
            // The server's access log (one line per request that reached it, written out before the exit) says the same:
            // every request it accepted was answered as the client saw it; a connection reset before a response (if any)
            // belongs to a request the server never saw.
            var lines = AccessLog(log);
            int Served(string protocol) => results.Count(r => r.Protocol == protocol && r.Outcome == Outcome.Served);
            int Rejected(string protocol) => results.Count(r => r.Protocol == protocol && r.Outcome == Outcome.Rejected);
            var rest = lines.Where(l => l.Path == "/v2/models/simple/infer").ToList();
            var grpcCalls = lines.Where(l => l.Path == "/inference.GRPCInferenceService/ModelInfer").ToList();
            Assert.Equal(Served("REST"), rest.Count(l => l.Status == 200));
            Assert.Equal(Rejected("REST"), rest.Count(l => l.Status == 503));
            Assert.Equal(rest.Count, Served("REST") + Rejected("REST"));
            Assert.Equal(Served("gRPC"), grpcCalls.Count(l => l.GrpcStatus == 0));
            Assert.Equal(Rejected("gRPC"), grpcCalls.Count(l => l.GrpcStatus == 14));
            Assert.Equal(grpcCalls.Count, Served("gRPC") + Rejected("gRPC"));
            Assert.Equal(200, Assert.Single(lines, l => l.Path == "/v2/models/shakespeare/generate_stream").Status);
            // Requests sent after readiness failed (during the drain delay) were still served.
            Assert.Contains(results, r => r.Outcome == Outcome.Served && r.Started > readinessFailed);
            // Each worker ended refused once the process was gone, and, once turned away, was never served again.
            foreach (var worker in workers.Select(w => w.Result))
            {
                Assert.Equal(Outcome.Refused, worker[^1].Outcome);
                var firstTurnedAway = worker.FindIndex(r => r.Outcome is Outcome.Rejected or Outcome.Refused);
                Assert.DoesNotContain(worker.Skip(firstTurnedAway), r => r.Outcome == Outcome.Served);
            }
            // The stream that was running through the drain finished whole.
            Assert.Equal("length", finish);
            Assert.Equal(MaxTokens, tokens);
            Assert.Contains("Drain delay over", log);
            Assert.DoesNotContain("Drain timeout", log);
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill(entireProcessTree: true);
            }
        }
    }

    private async Task<List<(string, long, Outcome, string)>> WorkAsync(string protocol, Func<Task<(Outcome, string)>> send, CancellationToken stop)
    {
        var results = new List<(string, long, Outcome, string)>();
        while (!stop.IsCancellationRequested)
        {
            var started = Stopwatch.GetTimestamp();
            var (outcome, detail) = await send();
            results.Add((protocol, started, outcome, detail));
            if (outcome == Outcome.Served)
            {
                Interlocked.Increment(ref _served);
            }
            if (outcome is Outcome.Refused or Outcome.Lost)
            {
                break;
            }
        }
        return results;
    }

    private static readonly byte[] SimpleBody = Encoding.UTF8.GetBytes(
        "{\"inputs\": [{\"name\": \"INPUT0\", \"datatype\": \"INT32\", \"shape\": [1, 16], \"data\": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}," +
        " {\"name\": \"INPUT1\", \"datatype\": \"INT32\", \"shape\": [1, 16], \"data\": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}");

    private static readonly HttpClient RestClient = new() { Timeout = TimeSpan.FromMinutes(2) };

    private static async Task<(Outcome, string)> RestInferAsync(int port)
    {
        try
        {
            using var response = await RestClient.PostAsync($"http://127.0.0.1:{port}/v2/models/simple/infer", new ByteArrayContent(SimpleBody));
            var body = await response.Content.ReadAsStringAsync();
            return response.StatusCode switch
            {
                HttpStatusCode.OK when body.Contains("OUTPUT0", StringComparison.Ordinal) => (Outcome.Served, ""),
                HttpStatusCode.ServiceUnavailable when body.Contains("shutting down", StringComparison.Ordinal) => (Outcome.Rejected, ""),
                _ => (Outcome.Lost, $"REST {(int)response.StatusCode} {body}"),
            };
        }
        catch (HttpRequestException e) when (IsRefused(e))
        {
            return (Outcome.Refused, "");
        }
        catch (HttpRequestException e) when (IsTransport(e))
        {
            // The connection failed before any response: the request may never have reached the application (a
            // connection in the listen backlog is reset when the listener closes). The server's access log decides.
            return (Outcome.Undelivered, "REST " + Describe(e));
        }
        catch (Exception e)
        {
            return (Outcome.Lost, "REST " + Describe(e));
        }
    }

    private static async Task<(Outcome, string)> GrpcInferAsync(GRPCInferenceService.GRPCInferenceServiceClient client)
    {
        var request = new ModelInferRequest { ModelName = "simple" };
        foreach (var name in new[] { "INPUT0", "INPUT1" })
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = "INT32", Shape = { 1, 16 } };
            tensor.Contents = new InferTensorContents();
            tensor.Contents.IntContents.Add(Enumerable.Range(0, 16));
            request.Inputs.Add(tensor);
        }
        try
        {
            var response = await client.ModelInferAsync(request, deadline: DateTime.UtcNow.AddMinutes(2));
            return response.Outputs.Count == 2 ? (Outcome.Served, "") : (Outcome.Lost, "gRPC: missing outputs");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && e.Status.Detail.Contains("shutting down", StringComparison.Ordinal))
        {
            return (Outcome.Rejected, "");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && IsRefused(e.Status.DebugException))
        {
            return (Outcome.Refused, "");
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.Internal && IsTransport(e.Status.DebugException))
        {
            return (Outcome.Undelivered, "gRPC " + Describe(e.Status.DebugException!));
        }
        catch (RpcException e)
        {
            return (Outcome.Lost, $"gRPC {e.StatusCode}: {e.Status.Detail} {e.Status.DebugException?.Message}");
        }
    }

    /// <summary>
    /// Whether the failure is the connection's, with no response received: reset, closed, refused, or an HTTP/2 stream
    /// opened as the server's GOAWAY crossed it ("the HTTP/2 server closed the connection").
    /// </summary>
    private static bool IsTransport(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is SocketException or IOException or HttpRequestException)
            {
                return true;
            }
        }
        return false;
    }

    private static string Describe(Exception e)
    {
        var parts = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            parts.Add($"{x.GetType().Name}: {x.Message}");
        }
        return string.Join(" <- ", parts);
    }

    /// <summary>Whether the connection was refused (the request never reached the server).</summary>
    private static bool IsRefused(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Streams a long generation; returns the tokens received and the finish reason of the last event.</summary>
    private static async Task<(int Tokens, string Finish)> StreamAsync(HttpClient client, TaskCompletionSource firstToken)
    {
        var body = "{\"text_input\": \"ROMEO:\", \"parameters\": {\"max_tokens\": " + MaxTokens + ", \"temperature\": 0}}";
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/shakespeare/generate_stream") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var tokens = 0;
        var finish = "";
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data:", StringComparison.Ordinal))
            {
                continue;
            }
            using var json = JsonDocument.Parse(line[5..]);
            if (json.RootElement.TryGetProperty("error", out var error))
            {
                return (tokens, "error: " + error.GetString());
            }
            tokens++;
            firstToken.TrySetResult();
            if (json.RootElement.TryGetProperty("finish_reason", out var reason) && reason.ValueKind == JsonValueKind.String)
            {
                finish = reason.GetString()!;
            }
        }
        return (tokens, finish);
    }

    private static Process StartServer(string repo, int http, int grpc, int metrics)
    {
        var dll = Path.Combine(Paths.RepositoryRoot, "server", "InferenceServer", "bin", BuildConfiguration(), "net10.0", "InferenceServer.dll");
        Assert.True(File.Exists(dll), $"{dll} not built");
        var info = LibStdCxxCompat.ChildProcess("dotnet",
            $"\"{dll}\" --model-repository \"{repo}\" --bind-address 127.0.0.1 --http-port {http} --grpc-port {grpc} --metrics-port {metrics} --drain-delay 1 --drain-timeout 60");
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        return Process.Start(info) ?? throw new InvalidOperationException("could not start the server");
    }

    private static string BuildConfiguration() =>
        AppContext.BaseDirectory.Split(Path.DirectorySeparatorChar).Contains("Release") ? "Release" : "Debug";

    private sealed record AccessLine(string Path, int Status, int? GrpcStatus);

    /// <summary>The access log lines among the server's output (the JSON objects; the rest is the console logger's).</summary>
    private static List<AccessLine> AccessLog(string output)
    {
        var lines = new List<AccessLine>();
        foreach (var line in output.Split('\n'))
        {
            if (!line.StartsWith("{\"timestamp\"", StringComparison.Ordinal))
            {
                continue;
            }
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            int? grpc = root.TryGetProperty("grpc_status", out var g) && g.ValueKind == JsonValueKind.Number ? g.GetInt32() : null;
            lines.Add(new AccessLine(root.GetProperty("path").GetString()!, root.GetProperty("status").GetInt32(), grpc));
        }
        return lines;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<HttpStatusCode?> TryGetStatusAsync(HttpClient client, string path)
    {
        try
        {
            using var response = await client.GetAsync(path);
            return response.StatusCode;
        }
        catch (HttpRequestException)
        {
            return null;
        }
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition, TimeSpan timeout, Func<string> log)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met in time; server output:\n" + log());
            await Task.Delay(10);
        }
    }

    private static void CopyDirectory(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);
}
