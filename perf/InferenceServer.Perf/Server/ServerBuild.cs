using System.Diagnostics;

namespace InferenceServer.Perf;

/// <summary>
/// Published server builds for the out-of-process benchmarks: the current tree's <c>server/InferenceServer</c>, and a
/// baseline either given as a published folder or built from a git revision (a detached <c>git worktree</c> of it
/// in a temporary folder, <c>dotnet publish -c Release</c>, the worktree removed afterwards). Both builds use this
/// tree's prepared libstdc++ folder (<c>.tools/libstdcxx-compat</c>), so neither prepares its own.
/// </summary>
internal static class ServerBuild
{
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(15);

    /// <summary>The repository root: the folder above <c>perf/</c> that holds <c>server/InferenceServer</c>.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "server", "InferenceServer", "InferenceServer.csproj")) && Directory.Exists(Path.Combine(dir.FullName, "perf")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException($"no repository root (server/InferenceServer) above {AppContext.BaseDirectory}");
    }

    /// <summary>Publishes the server of the tree at <paramref name="root"/> into <paramref name="output"/>; returns the server's dll.</summary>
    public static async Task<string> PublishAsync(string root, string output, string compatDir)
    {
        BenchSession.Log($"publishing {root}/server/InferenceServer -> {output}");
        await RunAsync("dotnet", ["publish", Path.Combine(root, "server", "InferenceServer", "InferenceServer.csproj"), "-c", "Release", "-o", output,
            "--nologo", "-v", "quiet", $"-p:LibStdCxxCompatDir={compatDir}", "-p:PrepareLibStdCxxCompat=false"], root, PublishTimeout).ConfigureAwait(false);
        return ServerDll(output);
    }

    /// <summary>
    /// The baseline: <paramref name="spec"/> is a folder holding a published <c>InferenceServer.dll</c>, or a git
    /// revision of this repository, checked out (detached) under <paramref name="temp"/> and published there.
    /// </summary>
    public static async Task<(string Dll, string Label)> BaselineAsync(string spec, string root, string temp, string compatDir)
    {
        if (Directory.Exists(spec))
        {
            return (ServerDll(spec), $"published folder {Path.GetFullPath(spec)}");
        }
        var commit = (await RunAsync("git", ["rev-parse", "--verify", spec + "^{commit}"], root, TimeSpan.FromSeconds(30)).ConfigureAwait(false)).Trim();
        var source = Path.Combine(temp, "baseline-src");
        await RunAsync("git", ["worktree", "add", "--detach", source, commit], root, TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        try
        {
            var dll = await PublishAsync(source, Path.Combine(temp, "baseline"), compatDir).ConfigureAwait(false);
            return (dll, $"{spec} = {commit[..12]}");
        }
        finally
        {
            await RunAsync("git", ["worktree", "remove", "--force", source], root, TimeSpan.FromMinutes(2)).ConfigureAwait(false);
        }
    }

    private static string ServerDll(string folder)
    {
        var dll = Path.Combine(folder, "InferenceServer.dll");
        return File.Exists(dll) ? dll : throw new ArgumentException($"{dll} not found: not a published server folder");
    }

    /// <summary>Runs a command to completion (bounded); throws with its output when it fails.</summary>
    public static async Task<string> RunAsync(string file, IReadOnlyList<string> args, string workingDirectory, TimeSpan timeout)
    {
        var info = ChildEnvironment.StartInfo(file);
        info.WorkingDirectory = workingDirectory;
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {timeout}");
        }
        var output = await stdout.ConfigureAwait(false);
        var error = await stderr.ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {process.ExitCode}:\n{output}\n{error}");
        }
        return output;
    }
}

/// <summary>How this program starts another: with the environment it would have had without the private libstdc++ host.</summary>
internal static class ChildEnvironment
{
    /// <summary>
    /// Under the private host a bare <c>dotnet</c> would resolve to the patched host beside this process, and its loader
    /// variables would reach the child: <see cref="global::InferenceServer.Backends.TorchSharp.LibStdCxxCompat.ChildProcess"/>
    /// undoes both. Output is redirected.
    /// </summary>
    public static ProcessStartInfo StartInfo(string file)
    {
        var info = global::InferenceServer.Backends.TorchSharp.LibStdCxxCompat.ChildProcess(file, "");
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        info.UseShellExecute = false;
        return info;
    }
}
