using System.Globalization;
using InferenceServer.Backends;
using InferenceServer.Backends.OnnxRuntime;
using InferenceServer.Configuration;

namespace InferenceServer.Perf;

/// <summary>
/// The server's own KV engine outside the server: the decoder graph loaded by <see cref="OnnxRuntimeBackend"/> (as
/// an engine instance is) and the generation settings a <c>KvCacheDecoder</c> takes, as the server resolves them for a
/// Hugging Face export with no generation configuration (its defaults: kv_cache_bytes 1 GiB, max_model_len from
/// max_position_embeddings).
/// </summary>
internal static class KvEngineModel
{
    /// <summary>Loads <paramref name="modelFile"/> as one engine instance with <paramref name="threads"/> intra-op threads.</summary>
    public static IBackendModel Load(string modelFile, int threads) =>
        new OnnxRuntimeBackend().Load(new BackendLoadRequest("kv-engine", 1, modelFile, "cpu", false,
            new Dictionary<string, string> { ["intra_op_num_threads"] = threads.ToString(CultureInfo.InvariantCulture) }));

    /// <summary>The settings of a KV decoder over <paramref name="model"/>'s graph with <paramref name="running"/> running sequences per instance.</summary>
    public static GenerationSettings Settings(IBackendModel model, int maxModelLen, int running)
    {
        var layout = KvCacheLayout.Recognize(model.Signature.Inputs, model.Signature.Outputs, batchStripped: false)
            ?? throw new InvalidOperationException("the generated decoder is not recognised as a KV-cache decoder");
        return new GenerationSettings
        {
            // The decoder reads neither the tokenizer nor the waiting queue; the rest as GenerationSettings.Resolve makes a KV decoder's.
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.TokenizerJson },
            ContextWindow = maxModelLen,
            InputName = KvCacheLayout.InputIdsName,
            LogitsName = KvCacheLayout.LogitsName,
            LogitsPerPosition = true,
            LogitsType = layout.CacheType,
            LogitsWidth = (int)model.Signature.Outputs.First(o => o.Name == KvCacheLayout.LogitsName).Dims[^1],
            MaxRunningSequences = running,
            MaxWaitingSequences = 0,
            KvCache = layout,
            MaxModelLen = maxModelLen,
        };
    }
}
