using System.Text.Json;
using InferenceServer.Configuration;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// Version directories as Hugging Face Optimum (and hub repositories) lay them out, written by the ModelBuilder and
/// served with no config.yaml: the generation settings come from the JSON files, each with its source. Loading and
/// configuration only; generating needs the KV-cache engine.
/// </summary>
public sealed class HuggingFaceExportTests
{
    private static readonly DecoderOptions Tiny = new() { Layers = 1, DModel = 32, Heads = 4, KvHeads = 2, Vocab = 300, MaxPositions = 96 };

    private static string Version(string repository, string model, int version = 1) =>
        Path.Combine(repository, model, version.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static async Task<JsonDocument> ConfigAsync(RunningServer server, string model) =>
        JsonDocument.Parse(await server.Http.GetStringAsync($"/v2/models/{model}/config"));

    private static Dictionary<string, string> Provenance(JsonDocument config) =>
        config.RootElement.GetProperty("provenance").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);

    [Fact]
    public async Task Optimum_and_hub_exports_load_without_config_yaml_with_generation_settings_from_their_files()
    {
        var repo = Paths.NewTempDirectory("hf-repo");
        DecoderModelWriter.Write(Tiny, Version(repo, "optimum"));
        DecoderModelWriter.Write(Tiny with { Layout = DecoderLayout.Hub, ExternalData = true, EosTokenId = 5 }, Version(repo, "hub"));

        await using var server = await RunningServer.StartAsync(repo);
        var index = server.Repository.Index(false).ToDictionary(r => r.Name);
        Assert.True(index["optimum"].State == "READY", index["optimum"].Reason);
        Assert.True(index["hub"].State == "READY", index["hub"].Reason);

        var optimum = server.Repository.GetReady("optimum", "");
        var settings = Assert.IsType<GenerationSettings>(optimum.Config!.Generation);
        Assert.NotNull(settings.KvCache);
        Assert.Equal(Tiny.MaxPositions, settings.MaxModelLen);
        Assert.Equal([Tiny.EosTokenId], settings.StopTokenIds);
        Assert.Equal(TokenizerSpec.TokenizerJson, settings.Tokenizer.Kind);
        Assert.Equal("1/tokenizer.json", settings.Tokenizer.File);
        var tokenizer = optimum.Generation!.Tokenizer;
        Assert.Equal(Tiny.Vocab, tokenizer.VocabularySize);
        Assert.Equal(Tiny.EosTokenId, tokenizer.EosTokenId);
        Assert.Equal(Tiny.BosTokenId, tokenizer.BosTokenId);

        using (var config = await ConfigAsync(server, "optimum"))
        {
            Assert.Equal("model.onnx", config.RootElement.GetProperty("default_model_filename").GetString());
            var provenance = Provenance(config);
            Assert.Equal("config.json", provenance["generation.max_model_len"]);
            Assert.Equal("generation_config.json", provenance["generation.stop_token_ids"]);
            Assert.Equal("generation_config.json", provenance["generation.pad_token_id"]);
            Assert.Equal("tokenizer.json + tokenizer_config.json", provenance["generation.tokenizer"]);
            Assert.Equal("generation_config.json, tokenizer.json + tokenizer_config.json, config.json", provenance["generation"]);
            Assert.Equal("default", provenance["default_model_filename"]);
            Assert.Equal("model", provenance["input.past_key_values.0.key"]);
        }

        // The hub layout: the graph (and its external data) under onnx/, found without default_model_filename.
        var hub = server.Repository.GetReady("hub", "");
        Assert.Equal("onnx/model.onnx", hub.Config!.DefaultModelFilename);
        Assert.Equal(5, hub.Generation!.Tokenizer.EosTokenId);
        using (var config = await ConfigAsync(server, "hub"))
        {
            Assert.Equal("onnx/model.onnx", config.RootElement.GetProperty("default_model_filename").GetString());
            var provenance = Provenance(config);
            Assert.Equal("model", provenance["default_model_filename"]);
            Assert.Equal("config.json", provenance["generation.max_model_len"]);
        }
    }

    [Fact]
    public async Task Config_yaml_picks_a_graph_variant_and_overrides_generation_keys_and_versions_read_their_own_files()
    {
        var repo = Paths.NewTempDirectory("hf-variants");
        // onnx/model_fp16.onnx, as a hub repository holds beside onnx/model.onnx (here the same graph under that name).
        var variant = Version(repo, "variant");
        DecoderModelWriter.Write(Tiny with { Layout = DecoderLayout.Hub }, variant);
        File.Move(Path.Combine(variant, "onnx", "model.onnx"), Path.Combine(variant, "onnx", "model_fp16.onnx"));
        File.WriteAllText(Path.Combine(repo, "variant", "config.yaml"), "default_model_filename: onnx/model_fp16.onnx\ngeneration:\n  max_model_len: 64\n");

        // Two versions with different context lengths: each reads the files of its own directory.
        DecoderModelWriter.Write(Tiny, Version(repo, "versions", 1));
        DecoderModelWriter.Write(Tiny with { MaxPositions = 48 }, Version(repo, "versions", 2));
        File.WriteAllText(Path.Combine(repo, "versions", "config.yaml"), "version_policy: {all: {}}\n");

        await using var server = await RunningServer.StartAsync(repo);
        var index = server.Repository.Index(false).ToDictionary(r => (r.Name, r.Version));
        Assert.True(index[("variant", "1")].State == "READY", index[("variant", "1")].Reason);

        var loaded = server.Repository.GetReady("variant", "");
        Assert.Equal(64, loaded.Config!.Generation!.MaxModelLen);
        using (var config = await ConfigAsync(server, "variant"))
        {
            Assert.Equal("onnx/model_fp16.onnx", config.RootElement.GetProperty("default_model_filename").GetString());
            var provenance = Provenance(config);
            Assert.Equal("config.yaml", provenance["default_model_filename"]);
            Assert.Equal("config.yaml", provenance["generation.max_model_len"]);
            Assert.Equal("generation_config.json", provenance["generation.stop_token_ids"]);
            Assert.Equal("tokenizer.json + tokenizer_config.json", provenance["generation.tokenizer"]);
        }

        var first = server.Repository.GetReady("versions", "1");
        var second = server.Repository.GetReady("versions", "2");
        Assert.Equal(96, first.Config!.Generation!.MaxModelLen);
        Assert.Equal(48, second.Config!.Generation!.MaxModelLen);
        Assert.Equal("1/tokenizer.json", first.Config.Generation.Tokenizer.File);
        Assert.Equal("2/tokenizer.json", second.Config.Generation.Tokenizer.File);
    }

    [Fact]
    public async Task Bad_exports_are_unavailable_with_a_reason_that_names_the_problem()
    {
        var repo = Paths.NewTempDirectory("hf-bad");
        DecoderModelWriter.Write(Tiny, Version(repo, "escape"));
        File.WriteAllText(Path.Combine(repo, "escape", "config.yaml"), "default_model_filename: ../x.onnx\n");
        DecoderModelWriter.Write(Tiny with { Tokenizer = false }, Version(repo, "no_tokenizer"));
        DecoderModelWriter.Write(Tiny, Version(repo, "bad_json"));
        File.WriteAllText(Path.Combine(Version(repo, "bad_json"), "generation_config.json"), "{\"eos_token_id\": [2,\n");
        DecoderModelWriter.Write(Tiny, Version(repo, "bad_value"));
        File.WriteAllText(Path.Combine(Version(repo, "bad_value"), "tokenizer_config.json"), "{\"eos_token\": \"<|im_end|>\"}");
        Directory.CreateDirectory(Version(repo, "no_graph"));
        File.WriteAllText(Path.Combine(Version(repo, "no_graph"), "config.json"), "{\"max_position_embeddings\": 64}");

        await using var server = await RunningServer.StartAsync(repo);
        var index = server.Repository.Index(false).ToDictionary(r => r.Name);
        Assert.All(index.Values, row => Assert.Equal("UNAVAILABLE", row.State));
        Assert.Contains("default_model_filename '../x.onnx' must name a file in the version directory", index["escape"].Reason);
        Assert.Contains("KV-cache decoder", index["no_tokenizer"].Reason);
        Assert.Contains("no tokenizer", index["no_tokenizer"].Reason);
        Assert.Contains("generation_config.json: not valid JSON (line 2", index["bad_json"].Reason);
        Assert.Contains("eos_token '<|im_end|>' is not a token of the tokenizer", index["bad_value"].Reason);
        Assert.Contains("looked for model.onnx, decoder_model_merged.onnx, onnx/model.onnx, onnx/decoder_model_merged.onnx", index["no_graph"].Reason);

        // Over HTTP: the model is unavailable (503) with its reason, never a 500.
        using var response = await server.Http.GetAsync("/v2/models/bad_json/config");
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("generation_config.json", await response.Content.ReadAsStringAsync());
    }
}
