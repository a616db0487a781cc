using System.Diagnostics;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>
/// Loading and unloading a generative model of the in-process server (explicit model control) around the raw
/// baselines, so that a raw loop never shares the process with the model's decode threads.
/// </summary>
internal static class ModelControl
{
    /// <summary>
    /// Unloads <paramref name="model"/> and waits (bounded) until its decode threads have ended. libtorch parallelises
    /// with OpenMP (libgomp), which gives every thread calling into it a team of worker threads for as long as that
    /// thread lives, and whose waiting threads, unless OMP_WAIT_POLICY is PASSIVE (the server's default), spin for
    /// 300,000 iterations, but only 100 while the process has more OpenMP threads than cores
    /// (libgomp/config/linux/wait.h, do_spin). With the decode thread's team alive, the raw loop's team is one too many
    /// on two cores and every one of its steps pays for it (about 1.2 ms instead of 0.22 ms at batch 1 on this machine).
    /// Without the decode thread, the raw loop has the process to itself whatever the policy; for an ONNX Runtime
    /// model the unload also frees its sessions, their intra-op threads and its KV cache. A decode thread is recognised
    /// by its name, "generate MODEL:VERSION #i" (its first 15 characters in /proc); an OpenMP worker inherits that name.
    /// </summary>
    public static async Task UnloadAsync(BenchSession session, string model)
    {
        await session.Server.Grpc.RepositoryModelUnloadAsync(new RepositoryModelUnloadRequest { ModelName = model }, deadline: DateTime.UtcNow.AddSeconds(30)).ConfigureAwait(false);
        var started = Stopwatch.GetTimestamp();
        while (DecodeThreads(model) > 0)
        {
            if (Stopwatch.GetElapsedTime(started) > TimeSpan.FromSeconds(30))
            {
                throw new TimeoutException($"the model's decode threads were still running 30 s after unloading '{model}'");
            }
            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    /// <summary>Loads <paramref name="model"/> and waits (bounded) until it is ready.</summary>
    public static async Task LoadAsync(BenchSession session, string model)
    {
        await session.Server.Grpc.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = model }, deadline: DateTime.UtcNow.AddSeconds(120)).ConfigureAwait(false);
        await session.Server.WaitForModelAsync(model).ConfigureAwait(false);
    }

    /// <summary>Threads of this process named after one of <paramref name="model"/>'s decode loops (0 where /proc is not there).</summary>
    public static int DecodeThreads(string model)
    {
        var name = "generate " + model;
        var prefix = name[..Math.Min(15, name.Length)];
        var count = 0;
        try
        {
            foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
            {
                try
                {
                    if (File.ReadAllText(Path.Combine(task, "comm")).StartsWith(prefix, StringComparison.Ordinal))
                    {
                        count++;
                    }
                }
                catch (IOException)
                {
                    // The thread ended while we looked.
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
        return count;
    }
}
