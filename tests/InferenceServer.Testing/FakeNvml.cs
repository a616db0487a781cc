using System.Runtime.InteropServices;
using InferenceServer.Backends.TorchSharp;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>
/// A fake NVML, compiled with gcc from the C source below: two GPUs with fixed, distinct readings. The test loads the
/// same library as the server (the loader shares one copy), so it can change a reading and count init and shutdown calls.
/// </summary>
internal sealed class FakeNvml : IDisposable
{
    public const string Uuid0 = "GPU-0f0e0d0c-0000-4000-8000-000000000000";
    public const string Uuid1 = "GPU-0f0e0d0c-0000-4000-8000-000000000001";
    public const string Name0 = "Fake A100-SXM4-40GB";
    public const string Name1 = "Fake Tesla T4";
    public const uint Utilization0 = 37;
    public const uint Utilization1 = 81;
    public const ulong MemoryTotal0 = 42_949_672_960;
    public const ulong MemoryUsed0 = 1_073_741_824;
    public const ulong MemoryTotal1 = 17_179_869_184;
    public const ulong MemoryUsed1 = 3_221_225_472;
    public const uint PowerMilliwatts0 = 250_500;
    public const uint Temperature0 = 61;
    public const uint Temperature1 = 47;

    // No headers: the fake needs nothing from libc. Device 1 has no power sensor (NVML_ERROR_NOT_SUPPORTED), as some do.
    private const string Source = """
        typedef struct { unsigned int gpu; unsigned int memory; } nvmlUtilization_t;
        typedef struct { unsigned long long total; unsigned long long free; unsigned long long used; } nvmlMemory_t;
        typedef struct fake_device { unsigned int index; } *nvmlDevice_t;

        #ifndef FAKE_INIT_RESULT
        #define FAKE_INIT_RESULT 0
        #endif

        static struct fake_device devices[2] = { { 0 }, { 1 } };
        static const char *names[2] = { "Fake A100-SXM4-40GB", "Fake Tesla T4" };
        static const char *uuids[2] = { "GPU-0f0e0d0c-0000-4000-8000-000000000000", "GPU-0f0e0d0c-0000-4000-8000-000000000001" };
        static unsigned int utilization[2] = { 37, 81 };
        static const unsigned long long memory_total[2] = { 42949672960ULL, 17179869184ULL };
        static const unsigned long long memory_used[2] = { 1073741824ULL, 3221225472ULL };
        static const unsigned int temperature[2] = { 61, 47 };
        static int temperature_lost[2];
        static int init_calls, shutdown_calls;

        static int copy(char *dst, unsigned int length, const char *src)
        {
            unsigned int i = 0;
            for (; src[i] != 0; i++) { if (i + 1 >= length) return 7; dst[i] = src[i]; }
            dst[i] = 0;
            return 0;
        }

        int nvmlInit_v2(void) { init_calls++; return FAKE_INIT_RESULT; }
        int nvmlShutdown(void) { shutdown_calls++; return 0; }
        const char *nvmlErrorString(int result)
        {
            switch (result)
            {
                case 2: return "Invalid Argument";
                case 3: return "Not Supported";
                case 9: return "Driver Not Loaded";
                case 15: return "GPU is lost";
                default: return "Unknown Error";
            }
        }
        int nvmlDeviceGetCount_v2(unsigned int *count) { *count = 2; return 0; }
        int nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
        {
            if (index >= 2) return 2;
            *device = &devices[index];
            return 0;
        }
        int nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) { return copy(name, length, names[device->index]); }
        int nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) { return copy(uuid, length, uuids[device->index]); }
        int nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *rates)
        {
            rates->gpu = utilization[device->index];
            rates->memory = 5;
            return 0;
        }
        int nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory)
        {
            memory->total = memory_total[device->index];
            memory->used = memory_used[device->index];
            memory->free = memory->total - memory->used;
            return 0;
        }
        int nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *milliwatts)
        {
            if (device->index == 1) return 3;
            *milliwatts = 250500;
            return 0;
        }
        int nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *celsius)
        {
            if (sensor != 0) return 2;
            if (temperature_lost[device->index]) return 15;
            *celsius = temperature[device->index];
            return 0;
        }

        void fake_set_utilization(unsigned int index, unsigned int percent) { utilization[index] = percent; }
        void fake_lose_temperature(unsigned int index) { temperature_lost[index] = 1; }
        int fake_init_calls(void) { return init_calls; }
        int fake_shutdown_calls(void) { return shutdown_calls; }
        """;

    private readonly nint _library;

    private FakeNvml(string path)
    {
        Path = path;
        _library = NativeLibrary.Load(path);
    }

    /// <summary>The compiled library (what <c>--nvml-library</c> takes).</summary>
    public string Path { get; }

    /// <summary>Compiles the fake into a fresh directory; <paramref name="initResult"/> is what its nvmlInit_v2 returns.</summary>
    public static async Task<FakeNvml> CompileAsync(int initResult = 0)
    {
        var gcc = FindGcc();
        Assert.True(gcc is not null, "gcc is not installed: the fake NVML library is compiled with it (apt-get install gcc libc6-dev; .ci/run does it)");
        var dir = Paths.NewTempDirectory("fake-nvml");
        var source = System.IO.Path.Combine(dir, "fake-nvml.c");
        var library = System.IO.Path.Combine(dir, "libfake-nvml.so");
        await File.WriteAllTextAsync(source, Source);
        var info = LibStdCxxCompat.ChildProcess(gcc!, $"-shared -fPIC -O1 -DFAKE_INIT_RESULT={initResult} -o \"{library}\" \"{source}\"");
        info.RedirectStandardError = true;
        info.RedirectStandardOutput = true;
        using var process = System.Diagnostics.Process.Start(info)!;
        var errors = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"gcc failed ({process.ExitCode}): {await errors}{await output}");
        return new FakeNvml(library);
    }

    /// <summary>Changes device <paramref name="index"/>'s utilization from now on.</summary>
    public unsafe void SetUtilization(uint index, uint percent) => ((delegate* unmanaged<uint, uint, void>)Export("fake_set_utilization"))(index, percent);

    /// <summary>Makes device <paramref name="index"/>'s temperature reading fail (NVML_ERROR_GPU_IS_LOST) from now on.</summary>
    public unsafe void LoseTemperature(uint index) => ((delegate* unmanaged<uint, void>)Export("fake_lose_temperature"))(index);

    /// <summary>How many times nvmlInit_v2 was called.</summary>
    public unsafe int InitCalls => ((delegate* unmanaged<int>)Export("fake_init_calls"))();

    /// <summary>How many times nvmlShutdown was called.</summary>
    public unsafe int ShutdownCalls => ((delegate* unmanaged<int>)Export("fake_shutdown_calls"))();

    public void Dispose() => NativeLibrary.Free(_library);

    private nint Export(string name) => NativeLibrary.GetExport(_library, name);

    private static string? FindGcc() =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/bin")
            .Select(d => System.IO.Path.Combine(d, "gcc"))
            .FirstOrDefault(File.Exists);
}
