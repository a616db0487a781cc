using System.Runtime.InteropServices;

namespace InferenceServer.Backends.TorchSharp;

/// <summary>
/// libtorch runs its intra-op parallel regions on OpenMP (libgomp), whose idle threads spin-wait by default. In a
/// server the engine shares the cores with the transport and the other models; a spinning worker that gets
/// preempted stalls every barrier of the next operator. Measured on this repository's 2-core machines with the
/// shakespeare model under streaming load: a decode step at batch 1 took 22 ms with spinning and 0.6 ms with
/// passive waiting. So the server asks for passive waiting unless the operator chose otherwise. libgomp reads the
/// variable once, when it is loaded: this must run before the first TorchSharp call.
/// </summary>
public static class OpenMpWaitPolicy
{
    private const string Variable = "OMP_WAIT_POLICY";

    /// <summary>Sets <c>OMP_WAIT_POLICY=PASSIVE</c> in the native and managed environment unless it is already set.</summary>
    public static void PreferPassive()
    {
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable)))
        {
            return;
        }
        Environment.SetEnvironmentVariable(Variable, "PASSIVE");
        if (!OperatingSystem.IsWindows())
        {
            // The managed environment is a copy; native code (libgomp) reads the C environment.
            _ = setenv(Variable, "PASSIVE", 0);
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);
}
