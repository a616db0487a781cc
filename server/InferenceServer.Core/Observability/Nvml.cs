using System.Runtime.InteropServices;
using System.Text;

namespace InferenceServer.Observability;

/// <summary>
/// The few NVML calls the GPU metrics need, bound at run time from the driver's library (libnvidia-ml.so.1), so that
/// the server starts on machines without an NVIDIA driver. Every call returns NVML's status code (0 is success).
/// </summary>
internal sealed unsafe class Nvml : IDisposable
{
    public const int Success = 0;
    public const int ErrorNotSupported = 3;
    public const int ErrorFunctionNotFound = 13;

    // NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
    private const int NameBufferSize = 96;
    private const int UuidBufferSize = 96;
    // NVML_TEMPERATURE_GPU: the core's sensor.
    private const int TemperatureGpu = 0;

    private readonly nint _library;
    private readonly delegate* unmanaged<int> _shutdown;
    private readonly delegate* unmanaged<uint*, int> _deviceGetCount;
    private readonly delegate* unmanaged<uint, nint*, int> _deviceGetHandleByIndex;
    private readonly delegate* unmanaged<nint, byte*, uint, int> _deviceGetName;
    private readonly delegate* unmanaged<nint, byte*, uint, int> _deviceGetUuid;
    private readonly delegate* unmanaged<nint, Utilization*, int> _deviceGetUtilizationRates;
    private readonly delegate* unmanaged<nint, Memory*, int> _deviceGetMemoryInfo;
    private readonly delegate* unmanaged<nint, uint*, int> _deviceGetPowerUsage;
    private readonly delegate* unmanaged<nint, int, uint*, int> _deviceGetTemperature;
    private readonly delegate* unmanaged<int, byte*> _errorString;
    private bool _disposed;

    private Nvml(nint library)
    {
        _library = library;
        _shutdown = (delegate* unmanaged<int>)Export("nvmlShutdown");
        _deviceGetCount = (delegate* unmanaged<uint*, int>)Export("nvmlDeviceGetCount_v2");
        _deviceGetHandleByIndex = (delegate* unmanaged<uint, nint*, int>)Export("nvmlDeviceGetHandleByIndex_v2");
        _deviceGetName = (delegate* unmanaged<nint, byte*, uint, int>)Export("nvmlDeviceGetName");
        _deviceGetUuid = (delegate* unmanaged<nint, byte*, uint, int>)Export("nvmlDeviceGetUUID");
        _deviceGetUtilizationRates = (delegate* unmanaged<nint, Utilization*, int>)Export("nvmlDeviceGetUtilizationRates");
        _deviceGetMemoryInfo = (delegate* unmanaged<nint, Memory*, int>)Export("nvmlDeviceGetMemoryInfo");
        // Optional: a missing one reads as "not supported" for its metric only.
        _deviceGetPowerUsage = (delegate* unmanaged<nint, uint*, int>)OptionalExport("nvmlDeviceGetPowerUsage");
        _deviceGetTemperature = (delegate* unmanaged<nint, int, uint*, int>)OptionalExport("nvmlDeviceGetTemperature");
        _errorString = (delegate* unmanaged<int, byte*>)OptionalExport("nvmlErrorString");
    }

    /// <summary>
    /// Loads <paramref name="library"/> (a name the dynamic loader searches for, or a path) and initialises NVML; on
    /// failure returns null with the reason.
    /// </summary>
    public static Nvml? TryOpen(string library, out string reason)
    {
        if (!NativeLibrary.TryLoad(library, out var handle))
        {
            reason = $"{library} could not be loaded (no NVIDIA driver on this machine?)";
            return null;
        }
        Nvml nvml;
        try
        {
            nvml = new Nvml(handle);
        }
        catch (EntryPointNotFoundException e)
        {
            NativeLibrary.Free(handle);
            reason = $"{library} is not a usable NVML: {e.Message}";
            return null;
        }
        if (!NativeLibrary.TryGetExport(handle, "nvmlInit_v2", out var init))
        {
            NativeLibrary.Free(handle);
            reason = $"{library} is not a usable NVML: it has no nvmlInit_v2";
            return null;
        }
        var status = ((delegate* unmanaged<int>)init)();
        if (status != Success)
        {
            reason = $"nvmlInit_v2 failed: {nvml.ErrorString(status)}";
            NativeLibrary.Free(handle);
            return null;
        }
        reason = "";
        return nvml;
    }

    /// <summary>nvmlDeviceGetCount_v2.</summary>
    public int DeviceCount(out uint count)
    {
        fixed (uint* p = &count)
        {
            return _deviceGetCount(p);
        }
    }

    /// <summary>nvmlDeviceGetHandleByIndex_v2.</summary>
    public int DeviceHandle(uint index, out nint device)
    {
        fixed (nint* p = &device)
        {
            return _deviceGetHandleByIndex(index, p);
        }
    }

    /// <summary>nvmlDeviceGetName.</summary>
    public int DeviceName(nint device, out string name)
    {
        var buffer = stackalloc byte[NameBufferSize];
        var status = _deviceGetName(device, buffer, NameBufferSize);
        name = status == Success ? CString(buffer, NameBufferSize) : "";
        return status;
    }

    /// <summary>nvmlDeviceGetUUID.</summary>
    public int DeviceUuid(nint device, out string uuid)
    {
        var buffer = stackalloc byte[UuidBufferSize];
        var status = _deviceGetUuid(device, buffer, UuidBufferSize);
        uuid = status == Success ? CString(buffer, UuidBufferSize) : "";
        return status;
    }

    /// <summary>nvmlDeviceGetUtilizationRates: percent of the last sample period the GPU ran kernels.</summary>
    public int GpuUtilizationPercent(nint device, out uint percent)
    {
        Utilization utilization;
        var status = _deviceGetUtilizationRates(device, &utilization);
        percent = utilization.Gpu;
        return status;
    }

    /// <summary>nvmlDeviceGetMemoryInfo, in bytes.</summary>
    public int MemoryInfo(nint device, out ulong total, out ulong used)
    {
        Memory memory;
        var status = _deviceGetMemoryInfo(device, &memory);
        total = memory.Total;
        used = memory.Used;
        return status;
    }

    /// <summary>nvmlDeviceGetPowerUsage, in milliwatts.</summary>
    public int PowerMilliwatts(nint device, out uint milliwatts)
    {
        milliwatts = 0;
        if (_deviceGetPowerUsage is null)
        {
            return ErrorFunctionNotFound;
        }
        fixed (uint* p = &milliwatts)
        {
            return _deviceGetPowerUsage(device, p);
        }
    }

    /// <summary>nvmlDeviceGetTemperature of the core sensor, in degrees Celsius.</summary>
    public int TemperatureCelsius(nint device, out uint celsius)
    {
        celsius = 0;
        if (_deviceGetTemperature is null)
        {
            return ErrorFunctionNotFound;
        }
        fixed (uint* p = &celsius)
        {
            return _deviceGetTemperature(device, TemperatureGpu, p);
        }
    }

    /// <summary>NVML's text for a status code (nvmlErrorString), with the code.</summary>
    public string ErrorString(int status)
    {
        var text = _errorString is null ? null : _errorString(status);
        return text is null ? $"NVML error {status}" : $"{Marshal.PtrToStringUTF8((nint)text)} (NVML error {status})";
    }

    /// <summary>nvmlShutdown, then unloads the library.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _shutdown();
        NativeLibrary.Free(_library);
    }

    private nint Export(string name) => NativeLibrary.GetExport(_library, name);

    private nint OptionalExport(string name) => NativeLibrary.TryGetExport(_library, name, out var address) ? address : 0;

    private static string CString(byte* buffer, int size)
    {
        var span = new ReadOnlySpan<byte>(buffer, size);
        var end = span.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? span : span[..end]);
    }

    // nvmlUtilization_t.
    [StructLayout(LayoutKind.Sequential)]
    private struct Utilization
    {
        public uint Gpu;
        public uint Memory;
    }

    // nvmlMemory_t.
    [StructLayout(LayoutKind.Sequential)]
    private struct Memory
    {
        public ulong Total;
        public ulong Free;
        public ulong Used;
    }
}
