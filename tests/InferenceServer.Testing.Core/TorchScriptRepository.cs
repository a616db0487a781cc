namespace InferenceServer.Tests.Infrastructure;

/// <summary>Model repositories over ../shared/models/torchscript (files linked in place, configs written here).</summary>
internal static class TorchScriptRepository
{
    /// <summary>The 65 characters of shakespeare.pt.zip's vocabulary, in id order (../shared/models/README.md).</summary>
    public const string ShakespeareVocabulary = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>shakespeare.pt.zip's fixed context length.</summary>
    public const int ShakespeareWindow = 32;

    public static string File(string name) => Path.Combine(Paths.SharedModels, "torchscript", name);

    /// <summary>Adds <paramref name="file"/> as <c>name/1/model.pt</c> with <paramref name="configYaml"/>.</summary>
    public static void Add(string repository, string name, string file, string configYaml)
    {
        var dir = Path.Combine(repository, name, "1");
        Directory.CreateDirectory(dir);
        System.IO.File.CreateSymbolicLink(Path.Combine(dir, "model.pt"), File(file));
        System.IO.File.WriteAllText(Path.Combine(repository, name, "config.yaml"), configYaml);
    }

    /// <summary>The configuration that serves shakespeare.pt.zip as a generative model (the README's example).</summary>
    public static string ShakespeareConfig(int maxRunning = 64, int maxWaiting = 256) => $$"""
        backend: pytorch
        max_batch_size: 64
        input:
          - name: tokens
            data_type: TYPE_INT64
            dims: [32]
        output:
          - name: logits
            data_type: TYPE_FP32
            dims: [32, 65]
        generation:
          tokenizer:
            kind: characters
            vocabulary: "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
          max_running_sequences: {{maxRunning}}
          max_waiting_sequences: {{maxWaiting}}
        """;
}
