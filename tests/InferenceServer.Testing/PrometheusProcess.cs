using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using InferenceServer.Backends.TorchSharp;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>
/// A real Prometheus server (the Debian package, which .ci/run installs) on loopback, with a scrape configuration of the
/// test's, and its HTTP API. Each instance has its own port and storage directory; disposing kills it.
/// </summary>
public sealed class PrometheusProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task<string> _log;

    private PrometheusProcess(Process process, Task<string> log, int port)
    {
        _process = process;
        _log = log;
        Url = new Uri($"http://127.0.0.1:{port}/");
        Api = new HttpClient { BaseAddress = Url };
    }

    /// <summary>The base address of the HTTP API.</summary>
    public Uri Url { get; }

    /// <summary>A client of the HTTP API.</summary>
    public HttpClient Api { get; }

    /// <summary>
    /// Starts Prometheus with <paramref name="scrapeConfigs"/> (the YAML list under <c>scrape_configs:</c>, each item
    /// starting with <c>- job_name:</c> at column 0) and a global scrape interval, and waits until it is ready.
    /// </summary>
    public static async Task<PrometheusProcess> StartAsync(string scrapeConfigs, TimeSpan? scrapeInterval = null)
    {
        var binary = new[] { "/usr/bin/prometheus", "/usr/local/bin/prometheus" }.FirstOrDefault(File.Exists);
        Assert.True(binary is not null, "prometheus is not installed (apt-get install prometheus; .ci/run does it)");
        var dir = Paths.NewTempDirectory("prometheus");
        var interval = (int)Math.Max(1, (scrapeInterval ?? TimeSpan.FromSeconds(1)).TotalSeconds);
        var indented = string.Join("\n", scrapeConfigs.Replace("\r", "", StringComparison.Ordinal).Split('\n').Select(line => "  " + line));
        var config = Path.Combine(dir, "prometheus.yml");
        File.WriteAllText(config, $"global:\n  scrape_interval: {interval}s\n  evaluation_interval: {interval}s\nscrape_configs:\n{indented}\n");
        var port = FreePort();
        var info = LibStdCxxCompat.ChildProcess(binary!,
            $"--config.file={config} --storage.tsdb.path={Path.Combine(dir, "data")} --web.listen-address=127.0.0.1:{port}");
        info.RedirectStandardError = true;
        info.RedirectStandardOutput = true;
        var process = Process.Start(info)!;
        _ = process.StandardOutput.ReadToEndAsync();
        var prometheus = new PrometheusProcess(process, process.StandardError.ReadToEndAsync(), port);
        try
        {
            await prometheus.WaitUntilReadyAsync();
            return prometheus;
        }
        catch
        {
            await prometheus.DisposeAsync();
            throw;
        }
    }

    /// <summary>An instant query's single value; null when the result is empty or not a number (NaN).</summary>
    public async Task<double?> QueryAsync(string query)
    {
        await ThrowIfExitedAsync();
        using var doc = JsonDocument.Parse(await Api.GetStringAsync("api/v1/query?query=" + Uri.EscapeDataString(query)));
        var result = doc.RootElement.GetProperty("data").GetProperty("result");
        if (result.ValueKind != JsonValueKind.Array || result.GetArrayLength() != 1)
        {
            return null;
        }
        var text = result[0].GetProperty("value")[1].GetString();
        return text is null or "NaN" ? null : double.Parse(text, CultureInfo.InvariantCulture);
    }

    /// <summary>Asks for <paramref name="query"/> until it answers <paramref name="expected"/> (bounded: 60 s); returns
    /// the last answer (NaN: none), so the caller's assertion shows what Prometheus had.</summary>
    public async Task<double> QueryUntilAsync(string query, double expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        double? last = null;
        while (DateTime.UtcNow < deadline)
        {
            last = await QueryAsync(query);
            if (last == expected)
            {
                return expected;
            }
            await Task.Delay(200);
        }
        return last ?? double.NaN;
    }

    public async ValueTask DisposeAsync()
    {
        Api.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }
        await _process.WaitForExitAsync();
        _process.Dispose();
    }

    private async Task WaitUntilReadyAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            await ThrowIfExitedAsync();
            try
            {
                using var response = await Api.GetAsync("-/ready");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            Assert.True(DateTime.UtcNow < deadline, "prometheus did not become ready within 60 s");
            await Task.Delay(100);
        }
    }

    private async Task ThrowIfExitedAsync()
    {
        if (_log.IsCompleted)
        {
            Assert.Fail("prometheus exited: " + await _log);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
