namespace InferenceServer.Tests.Infrastructure;

/// <summary>Where the repository and the shared third-party test data are.</summary>
internal static class Paths
{
    /// <summary>The repository root (the folder holding InferenceServer.sln).</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>../shared beside the repository: third-party models with golden outputs, never copied into the repository.</summary>
    public static string Shared { get; } = Path.GetFullPath(Environment.GetEnvironmentVariable("INFERENCE_SHARED_DIR") ?? Path.Combine(RepositoryRoot, "..", "shared"));

    public static string SharedModels => Path.Combine(Shared, "models");

    public static string SampleModels => Path.Combine(RepositoryRoot, "models");

    /// <summary>A fresh temporary directory, removed when the test process ends.</summary>
    public static string NewTempDirectory(string prefix)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return dir;
    }

    /// <summary>Adds <paramref name="modelFile"/> to a repository as <c>name/version/model.onnx</c> (a symlink: shared data is read in place).</summary>
    public static void LinkModel(string repository, string name, string modelFile, int version = 1)
    {
        var dir = Path.Combine(repository, name, version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, "model.onnx"), modelFile);
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "InferenceServer.sln")))
            {
                return dir.FullName;
            }
        }
        throw new InvalidOperationException("InferenceServer.sln not found above " + AppContext.BaseDirectory);
    }
}
