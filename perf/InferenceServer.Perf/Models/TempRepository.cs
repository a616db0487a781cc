namespace InferenceServer.Perf;

/// <summary>
/// A temporary directory holding generated model files (<c>files/</c>) and a model repository (<c>models/</c>) whose
/// models link to them (one file may serve several configurations); deleted on dispose.
/// </summary>
internal sealed class TempRepository : IDisposable
{
    public TempRepository()
    {
        Root = Path.Combine(Path.GetTempPath(), $"inference-bench-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Files);
        Directory.CreateDirectory(Models);
    }

    public string Root { get; }

    public string Files => Path.Combine(Root, "files");

    public string Models => Path.Combine(Root, "models");

    /// <summary>A path under <c>files/</c> for a generated model.</summary>
    public string FilePath(string fileName) => Path.Combine(Files, fileName);

    /// <summary>Adds model <paramref name="name"/> (version 1) over <paramref name="modelFile"/> (a symlink) with these settings.</summary>
    public void AddModel(string name, string modelFile, ModelSettings settings) => AddModel(name, modelFile, "model.onnx", settings.ToYaml());

    /// <summary>Adds model <paramref name="name"/> (version 1) as <paramref name="fileName"/>, a symlink to <paramref name="modelFile"/> (never a copy), with this <c>config.yaml</c>.</summary>
    public void AddModel(string name, string modelFile, string fileName, string configYaml)
    {
        var version = Path.Combine(Models, name, "1");
        Directory.CreateDirectory(version);
        File.CreateSymbolicLink(Path.Combine(version, fileName), Path.GetFullPath(modelFile));
        File.WriteAllText(Path.Combine(Models, name, "config.yaml"), configYaml);
    }

    /// <summary>Where the server reads model <paramref name="name"/>'s file (for the engine baseline).</summary>
    public string ModelPath(string name) => Path.Combine(Models, name, "1", "model.onnx");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException e)
        {
            Console.Error.WriteLine($"could not delete {Root}: {e.Message}");
        }
    }
}
