using System.Diagnostics;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>Starts the machine's own programs (python3, promtool) from tests, whatever runtime the test process runs on.</summary>
internal static class SystemProcess
{
    /// <summary>
    /// A start for <paramref name="file"/> with <paramref name="arguments"/>. Under tests/run.sh's private .NET host
    /// (systems whose libstdc++ is too old for TorchSharp), LD_LIBRARY_PATH points at newer C runtimes that a system
    /// binary must not load: the child gets the library path the test run started with.
    /// </summary>
    public static ProcessStartInfo StartInfo(string file, params IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { UseShellExecute = false };
        if (Environment.GetEnvironmentVariable("INFERENCE_LIBSTDCXX_COMPAT_ACTIVE") == "1")
        {
            var saved = Environment.GetEnvironmentVariable("INFERENCE_LIBSTDCXX_COMPAT_SAVED_LD_LIBRARY_PATH");
            if (string.IsNullOrEmpty(saved))
            {
                start.Environment.Remove("LD_LIBRARY_PATH");
            }
            else
            {
                start.Environment["LD_LIBRARY_PATH"] = saved;
            }
        }
        return start;
    }
}
