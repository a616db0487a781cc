using System.Reflection;
using System.Runtime.InteropServices;

namespace InferenceServer.Backends.TorchSharp;

/// <summary>
/// Runs the process where TorchSharp's native shim can load. libLibTorchSharp.so needs GLIBCXX_3.4.32; a process has
/// one libstdc++ and the .NET runtime loads the system's at startup, so on an older system (Debian 12) the only fix is
/// to start over: <see cref="ReexecIfNeeded"/> replaces the process (same PID, same arguments) with a private .NET host
/// whose loader and C/C++ runtimes are newer, prepared at build time by <c>server/compat/prepare-libstdcxx.sh</c>.
/// </summary>
public static class LibStdCxxCompat
{
    private const string RequiredVersion = "GLIBCXX_3.4.32";
    private const string ActiveVariable = "INFERENCE_LIBSTDCXX_COMPAT_ACTIVE";
    private const string SavedLibraryPathVariable = "INFERENCE_LIBSTDCXX_COMPAT_SAVED_LD_LIBRARY_PATH";

    /// <summary>Set to <c>0</c> to never re-execute (TorchScript models then fail to load on an old libstdc++).</summary>
    public const string DisableVariable = "INFERENCE_LIBSTDCXX_COMPAT";

    /// <summary>The prepared folder (lib/ and dotnet/), from the build (runtimeconfig) or <c>INFERENCE_LIBSTDCXX_COMPAT_DIR</c>.</summary>
    public static string? CompatDirectory =>
        Environment.GetEnvironmentVariable("INFERENCE_LIBSTDCXX_COMPAT_DIR") ?? AppContext.GetData("InferenceServer.LibStdCxxCompatDir") as string;

    /// <summary>Whether this process runs under the private host.</summary>
    public static bool IsActive => Environment.GetEnvironmentVariable(ActiveVariable) == "1";

    /// <summary>
    /// Call first thing in Main. Returns when the process can load TorchSharp as it is (new enough libstdc++, not Linux,
    /// already re-executed, disabled, or nothing prepared); otherwise does not return.
    /// </summary>
    public static void ReexecIfNeeded(string[] args)
    {
        OpenMpWaitPolicy.PreferPassive();
        if (IsActive)
        {
            RestoreChildEnvironment();
            return;
        }
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(DisableVariable) == "0" || SystemLibStdCxxIsNewEnough())
        {
            return;
        }
        var dir = CompatDirectory;
        var host = dir is null ? null : Path.Combine(dir, "dotnet", "dotnet");
        var entry = Assembly.GetEntryAssembly()?.Location;
        if (dir is null || !File.Exists(Path.Combine(dir, ".ready")) || !File.Exists(host) || string.IsNullOrEmpty(entry))
        {
            return;
        }
        var argv = new string?[args.Length + 3];
        argv[0] = host;
        argv[1] = entry;
        args.CopyTo(argv, 2);
        var env = new List<string?>();
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            var name = (string)e.Key;
            if (name is "LD_LIBRARY_PATH" or ActiveVariable or SavedLibraryPathVariable)
            {
                continue;
            }
            env.Add($"{name}={e.Value}");
        }
        env.Add($"LD_LIBRARY_PATH={Path.Combine(dir, "lib")}");
        env.Add($"{ActiveVariable}=1");
        env.Add($"{SavedLibraryPathVariable}={Environment.GetEnvironmentVariable("LD_LIBRARY_PATH") ?? ""}");
        env.Add(null);
        Console.Out.Flush();
        Console.Error.Flush();
        execve(host!, argv, env.ToArray());
        // Only reached when execve failed; carry on natively (TorchScript models will report why they cannot load).
        Console.Error.WriteLine($"warning: could not start under {host} (errno {Marshal.GetLastPInvokeError()}); TorchScript models will not load");
    }

    /// <summary>
    /// Under the private host, hands child processes the environment they had before: the loader read LD_LIBRARY_PATH
    /// at startup, and programs started from here must not pick up Debian 13's libc with their own older loader.
    /// </summary>
    private static void RestoreChildEnvironment()
    {
        if (!IsActive)
        {
            return;
        }
        var saved = Environment.GetEnvironmentVariable(SavedLibraryPathVariable);
        Environment.SetEnvironmentVariable("LD_LIBRARY_PATH", string.IsNullOrEmpty(saved) ? null : saved);
    }

    /// <summary>
    /// A <see cref="System.Diagnostics.ProcessStartInfo"/> for a program started from a process that may run under the
    /// private host: its environment is the one the process would have had without it (see <see cref="RestoreChildEnvironment"/>).
    /// </summary>
    public static System.Diagnostics.ProcessStartInfo ChildProcess(string fileName, string arguments)
    {
        var info = new System.Diagnostics.ProcessStartInfo(fileName, arguments);
        if (IsActive)
        {
            // Process.Start looks for a bare name in this process's own directory before PATH: under the private host
            // "dotnet" would be the patched one, which cannot run without its libraries.
            if (!fileName.Contains('/') && FindOnPath(fileName) is { } resolved)
            {
                info.FileName = resolved;
            }
            var saved = Environment.GetEnvironmentVariable(SavedLibraryPathVariable);
            info.Environment.Remove("LD_LIBRARY_PATH");
            // A child that is itself this server (or a tool using it) decides afresh whether it needs the compat host.
            info.Environment.Remove(ActiveVariable);
            info.Environment.Remove(SavedLibraryPathVariable);
            // Variables naming the private host (DOTNET_ROOT_X64, DOTNET_HOST_PATH set by dotnet test): a child .NET
            // program would otherwise run on it without its libraries and crash.
            if (CompatDirectory is { Length: > 0 } compat)
            {
                var host = Path.GetFullPath(compat);
                foreach (var name in info.Environment.Where(kv => kv.Value?.StartsWith(host, StringComparison.Ordinal) == true).Select(kv => kv.Key).ToList())
                {
                    info.Environment.Remove(name);
                }
            }
            if (!string.IsNullOrEmpty(saved))
            {
                info.Environment["LD_LIBRARY_PATH"] = saved;
            }
        }
        return info;
    }

    /// <summary>Whether the system's libstdc++ has <see cref="RequiredVersion"/> (then no private host is needed).</summary>
    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name))
            .FirstOrDefault(File.Exists);

    public static bool SystemLibStdCxxIsNewEnough()
    {
        string[] candidates = ["/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6"];
        foreach (var path in candidates)
        {
            if (File.Exists(path))
            {
                return FileContains(path, RequiredVersion);
            }
        }
        return true;
    }

    private static bool FileContains(string path, string text)
    {
        var needle = System.Text.Encoding.ASCII.GetBytes(text);
        var bytes = File.ReadAllBytes(path);
        return bytes.AsSpan().IndexOf(needle) >= 0;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int execve(string path, string?[] argv, string?[] envp);
}
