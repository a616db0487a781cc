using System.Globalization;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Observability;

/// <summary>
/// GPU utilization, memory, power and temperature from NVML, read at every scrape into the
/// <see cref="ServerMetrics.CreateGpuGauges">inference_gpu_*</see> gauges, one series per device. Without NVML (no
/// driver, or it fails to initialise, or it reports no GPU) there are no such metrics at all, and one log line says why.
/// A reading that fails at scrape time drops that device's series for it; the scrape goes on.
/// </summary>
public sealed partial class GpuMetrics : IDisposable
{
    private readonly Nvml _nvml;
    private readonly Device[] _devices;
    private readonly GpuGauges _gauges;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    // Readings that failed at the last scrape, so a failing one is logged once, not at every scrape.
    private readonly HashSet<(int Device, string Reading)> _failing = [];
    private bool _disposed;

    private GpuMetrics(Nvml nvml, Device[] devices, ServerMetrics metrics, ILogger logger)
    {
        _nvml = nvml;
        _devices = devices;
        _logger = logger;
        _gauges = metrics.CreateGpuGauges();
        metrics.Registry.AddBeforeCollectCallback(Refresh);
    }

    /// <summary>
    /// Opens NVML from <paramref name="library"/> and exports its GPUs into <paramref name="metrics"/>' registry; null (and
    /// one log line with the reason) when NVML is not available.
    /// </summary>
    public static GpuMetrics? Start(ServerMetrics metrics, string library, ILogger<GpuMetrics> logger)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(logger);
        if (string.IsNullOrWhiteSpace(library))
        {
            Log.Off(logger, "no NVML library is configured (Metrics:NvmlLibrary)");
            return null;
        }
        var nvml = Nvml.TryOpen(library, out var reason);
        if (nvml is null)
        {
            Log.Off(logger, reason);
            return null;
        }
        var devices = OpenDevices(nvml, out reason);
        if (devices is null)
        {
            nvml.Dispose();
            Log.Off(logger, reason);
            return null;
        }
        Log.On(logger, devices.Length, string.Join(", ", devices.Select(d => $"{d.Index}: {d.Name} {d.Uuid}")));
        return new GpuMetrics(nvml, devices, metrics, logger);
    }

    /// <summary>Stops reading (the gauges keep their last values) and shuts NVML down.</summary>
    public void Dispose()
    {
        using var _ = _gate.EnterScope();
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _nvml.Dispose();
    }

    private static Device[]? OpenDevices(Nvml nvml, out string reason)
    {
        var status = nvml.DeviceCount(out var count);
        if (status != Nvml.Success)
        {
            reason = $"nvmlDeviceGetCount_v2 failed: {nvml.ErrorString(status)}";
            return null;
        }
        if (count == 0)
        {
            reason = "NVML reports no GPU";
            return null;
        }
        var devices = new Device[count];
        for (var i = 0u; i < count; i++)
        {
            if ((status = nvml.DeviceHandle(i, out var handle)) != Nvml.Success)
            {
                reason = $"nvmlDeviceGetHandleByIndex_v2({i}) failed: {nvml.ErrorString(status)}";
                return null;
            }
            // A name or UUID NVML cannot give is left empty: the metrics still identify the device by its index.
            nvml.DeviceName(handle, out var name);
            nvml.DeviceUuid(handle, out var uuid);
            var index = i.ToString(CultureInfo.InvariantCulture);
            devices[i] = new Device(index, handle, name, uuid, [index, uuid, name]);
        }
        reason = "";
        return devices;
    }

    private void Refresh()
    {
        // Two scrapes at once must not interleave; after Dispose, NVML is gone.
        using var _ = _gate.EnterScope();
        if (_disposed)
        {
            return;
        }
        for (var i = 0; i < _devices.Length; i++)
        {
            var device = _devices[i];
            var status = _nvml.GpuUtilizationPercent(device.Handle, out var percent);
            Set(i, "utilization", status, _gauges.Utilization, percent / 100.0);
            status = _nvml.MemoryInfo(device.Handle, out var total, out var used);
            Set(i, "memory", status, _gauges.MemoryUsed, used);
            Set(i, "memory", status, _gauges.MemoryTotal, total);
            status = _nvml.PowerMilliwatts(device.Handle, out var milliwatts);
            Set(i, "power", status, _gauges.Power, milliwatts / 1000.0);
            status = _nvml.TemperatureCelsius(device.Handle, out var celsius);
            Set(i, "temperature", status, _gauges.Temperature, celsius);
        }
    }

    private void Set(int index, string reading, int status, Prometheus.Gauge gauge, double value)
    {
        var device = _devices[index];
        if (status == Nvml.Success)
        {
            gauge.WithLabels(device.Labels).Set(value);
            _failing.Remove((index, reading));
            return;
        }
        // Absent, not stale: a reading NVML cannot give has no series.
        gauge.RemoveLabelled(device.Labels);
        if (_failing.Add((index, reading)))
        {
            // Some GPUs have no power or temperature sensor: expected, so not a warning.
            var level = status is Nvml.ErrorNotSupported or Nvml.ErrorFunctionNotFound ? LogLevel.Debug : LogLevel.Warning;
            Log.ReadingFailed(_logger, level, reading, device.Index, _nvml.ErrorString(status));
        }
    }

    private sealed record Device(string Index, nint Handle, string Name, string Uuid, string[] Labels);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "GPU metrics are off: {Reason}")]
        public static partial void Off(ILogger logger, string reason);

        [LoggerMessage(2, LogLevel.Information, "GPU metrics are on: {Count} GPU(s) from NVML ({Devices})")]
        public static partial void On(ILogger logger, int count, string devices);

        [LoggerMessage(EventId = 3, Message = "GPU {Device}: NVML cannot give its {Reading} ({Error}); its series are left out until it can")]
        public static partial void ReadingFailed(ILogger logger, LogLevel level, string reading, string device, string error);
    }
}
