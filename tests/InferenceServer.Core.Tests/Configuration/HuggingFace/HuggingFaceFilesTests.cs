using InferenceServer.Configuration;
using InferenceServer.Configuration.HuggingFace;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Configuration.HuggingFace;

/// <summary>The reader of a Hugging Face export's JSON files, on hand-written files in a model/1/ directory.</summary>
public sealed class HuggingFaceFilesTests
{
    /// <summary>A tokenizer.json with the parts the reader looks at (added tokens, a Llama 3 style BOS template) and a tiny vocabulary.</summary>
    internal const string TokenizerJson = """
        {
          "version": "1.0",
          "added_tokens": [
            {"id": 0, "content": "<pad>", "special": true},
            {"id": 1, "content": "<s>", "special": true},
            {"id": 2, "content": "</s>", "special": true}
          ],
          "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
          "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
          },
          "model": {"type": "BPE", "vocab": {"a": 3, "b": 4}, "merges": []}
        }
        """;

    private readonly string _model = Paths.NewTempDirectory("hf-files");

    private string Version => Directory.CreateDirectory(Path.Combine(_model, "1")).FullName;

    private void Write(string file, string text) => File.WriteAllText(Path.Combine(Version, file), text);

    private IReadOnlyList<ConfigLayer> Read() => HuggingFaceFiles.Read(Version, _model);

    private static ModelConfigFile.GenerationEntry Generation(IReadOnlyList<ConfigLayer> layers, string source) =>
        Assert.Single(layers, l => l.Source == source).Values.Generation!;

    [Fact]
    public void A_Llama_style_export_gives_one_layer_per_file_in_precedence_order()
    {
        Write("generation_config.json", """{"bos_token_id": 1, "eos_token_id": [2, 7], "pad_token_id": null, "do_sample": true}""");
        Write("config.json", """{"model_type": "llama", "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}""");
        Write("tokenizer_config.json", """
            {"add_bos_token": true, "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": {"__type": "AddedToken", "content": "</s>"}, "pad_token": null}
            """);
        Write("tokenizer.json", TokenizerJson);

        var layers = Read();
        Assert.Equal(["generation_config.json", "tokenizer.json + tokenizer_config.json", "config.json"], layers.Select(l => l.Source));
        Assert.All(layers, l => Assert.True(l.FromModelFormat));

        var fromGeneration = Generation(layers, "generation_config.json");
        Assert.Equal([2, 7], fromGeneration.StopTokenIds);
        Assert.Null(fromGeneration.PadTokenId);

        var tokenizer = Generation(layers, "tokenizer.json + tokenizer_config.json").Tokenizer!;
        Assert.Equal(TokenizerSpec.TokenizerJson, tokenizer.Kind);
        Assert.Equal("1/tokenizer.json", tokenizer.File);
        Assert.Equal("</s>", tokenizer.EosToken);
        // With the EOS named by its text, the ids are stop tokens only: they need not agree with it (Llama 3 Instruct's do not).
        Assert.Null(tokenizer.EosTokenId);
        Assert.Equal("<s>", tokenizer.BosToken);
        Assert.True(tokenizer.AddBos);

        var fromConfig = Generation(layers, "config.json");
        Assert.Equal(4096, fromConfig.MaxModelLen);
        Assert.Equal([2], fromConfig.StopTokenIds);
        Assert.Equal(0, fromConfig.PadTokenId);
        Assert.Null(fromConfig.Tokenizer);
    }

    [Fact]
    public void An_onnxruntime_genai_export_is_read_from_its_genai_config_json()
    {
        // The shape of what onnxruntime-genai's model builder writes (no config.json or generation_config.json beside it).
        Write("genai_config.json", """
            {"model": {"bos_token_id": 1, "context_length": 8192, "eos_token_id": [2, 0], "pad_token_id": 0, "type": "llama", "vocab_size": 5,
              "decoder": {"filename": "model.onnx", "head_size": 16, "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
                "inputs": {"input_ids": "input_ids", "attention_mask": "attention_mask", "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"},
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key", "present_value_names": "present.%d.value"}}},
             "search": {"max_length": 8192, "past_present_share_buffer": true, "do_sample": false}}
            """);
        Write("tokenizer.json", TokenizerJson.Replace("\"post_processor\"", "\"unused\"", StringComparison.Ordinal));

        var layers = Read();
        Assert.Equal(["genai_config.json", "tokenizer.json + genai_config.json"], layers.Select(l => l.Source));
        var genAi = Assert.Single(layers, l => l.Source == "genai_config.json").Values;
        Assert.Equal("model.onnx", genAi.DefaultModelFilename);
        Assert.Equal(8192, genAi.Generation!.MaxModelLen);
        Assert.Equal([2, 0], genAi.Generation.StopTokenIds);
        Assert.Equal(0, genAi.Generation.PadTokenId);
        var tokenizer = Generation(layers, "tokenizer.json + genai_config.json").Tokenizer!;
        // Without tokenizer_config.json, the BOS and EOS are named by genai_config.json's ids.
        Assert.Equal("<s>", tokenizer.BosToken);
        Assert.False(tokenizer.AddBos);
        Assert.Equal(2, tokenizer.EosTokenId);
    }

    [Fact]
    public void An_eos_id_may_be_one_id_or_a_list_and_the_first_is_the_tokenizers_without_an_eos_text()
    {
        Write("tokenizer.json", TokenizerJson);
        Write("generation_config.json", """{"eos_token_id": 2}""");
        var single = Read();
        Assert.Equal([2], Generation(single, "generation_config.json").StopTokenIds);
        var tokenizer = Generation(single, "tokenizer.json + generation_config.json").Tokenizer!;
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.Null(tokenizer.EosToken);

        Write("generation_config.json", """{"eos_token_id": [5, 2, 5]}""");
        var list = Read();
        Assert.Equal([5, 2], Generation(list, "generation_config.json").StopTokenIds);
        Assert.Equal(5, Generation(list, "tokenizer.json + generation_config.json").Tokenizer!.EosTokenId);

        // An empty list is no id at all; config.json's then serves.
        Write("generation_config.json", """{"eos_token_id": []}""");
        Write("config.json", """{"eos_token_id": [9, 2]}""");
        var fallback = Read();
        Assert.DoesNotContain(fallback, l => l.Source == "generation_config.json");
        Assert.Equal([9, 2], Generation(fallback, "config.json").StopTokenIds);
        Assert.Equal(9, Generation(fallback, "tokenizer.json + config.json").Tokenizer!.EosTokenId);
    }

    [Fact]
    public void Null_and_negative_pad_ids_mean_none()
    {
        Write("generation_config.json", """{"pad_token_id": null, "eos_token_id": 2}""");
        Write("config.json", """{"pad_token_id": -1, "n_positions": 1024}""");
        var layers = Read();
        Assert.Null(Generation(layers, "generation_config.json").PadTokenId);
        var fromConfig = Generation(layers, "config.json");
        Assert.Null(fromConfig.PadTokenId);
        // GPT-2's name for the context length.
        Assert.Equal(1024, fromConfig.MaxModelLen);
    }

    [Fact]
    public void Missing_files_give_no_layers_and_a_missing_tokenizer_json_gives_no_tokenizer()
    {
        Assert.Empty(Read());

        Write("tokenizer_config.json", """{"eos_token": "</s>", "bos_token": "<s>"}""");
        Assert.Empty(Read());

        Write("config.json", """{"max_position_embeddings": 128}""");
        var layer = Assert.Single(Read());
        Assert.Equal("config.json", layer.Source);
        Assert.Null(layer.Values.Generation!.Tokenizer);
    }

    [Fact]
    public void Without_add_bos_token_the_tokenizer_json_template_decides_whether_a_bos_is_added()
    {
        // Llama 3: no add_bos_token, the template puts <|begin_of_text|> (here <s>) first.
        Write("tokenizer.json", TokenizerJson);
        var llama3 = Generation(Read(), "tokenizer.json").Tokenizer!;
        Assert.True(llama3.AddBos);
        Assert.Equal("<s>", llama3.BosToken);

        // GPT-2: a bos_token but a ByteLevel post-processor: named, never added.
        Write("tokenizer.json", TokenizerJson.Replace("\"TemplateProcessing\"", "\"ByteLevel\""));
        Write("tokenizer_config.json", """{"bos_token": "<s>", "eos_token": "</s>"}""");
        var gpt2 = Generation(Read(), "tokenizer.json + tokenizer_config.json").Tokenizer!;
        Assert.False(gpt2.AddBos);
        Assert.Equal("<s>", gpt2.BosToken);

        // An explicit add_bos_token: false wins over the template.
        Write("tokenizer.json", TokenizerJson);
        Write("tokenizer_config.json", """{"add_bos_token": false}""");
        Assert.False(Generation(Read(), "tokenizer.json + tokenizer_config.json").Tokenizer!.AddBos);
    }

    [Fact]
    public void A_bos_id_names_its_token_through_the_added_tokens_when_tokenizer_config_does_not()
    {
        Write("tokenizer.json", TokenizerJson.Replace("\"TemplateProcessing\"", "\"ByteLevel\""));
        Write("generation_config.json", """{"bos_token_id": 1}""");
        Write("tokenizer_config.json", """{"add_bos_token": true}""");
        var layers = Read();
        var tokenizer = Generation(layers, "tokenizer.json + tokenizer_config.json + generation_config.json").Tokenizer!;
        Assert.Equal("<s>", tokenizer.BosToken);
        Assert.True(tokenizer.AddBos);
    }

    [Theory]
    [InlineData("config.json", "{\"max_position_embeddings\": 4096,}x", "config.json: not valid JSON (line 1")]
    [InlineData("generation_config.json", "{\"eos_token_id\": 2", "generation_config.json: not valid JSON")]
    [InlineData("tokenizer_config.json", "[1, 2]", "tokenizer_config.json: expected a JSON object, not an array")]
    [InlineData("generation_config.json", "{\"eos_token_id\": \"two\"}", "generation_config.json: eos_token_id must be a token id or a list of token ids, not \"two\"")]
    [InlineData("generation_config.json", "{\"eos_token_id\": [2, -3]}", "generation_config.json: eos_token_id must be a token id or a list of token ids")]
    [InlineData("config.json", "{\"max_position_embeddings\": 1.5}", "config.json: max_position_embeddings must be a non-negative integer, not 1.5")]
    [InlineData("config.json", "{\"pad_token_id\": \"0\"}", "config.json: pad_token_id must be a token id, not \"0\"")]
    [InlineData("tokenizer_config.json", "{\"eos_token\": 2}", "tokenizer_config.json: eos_token must be the token's text or an object with its \"content\", not 2")]
    [InlineData("tokenizer_config.json", "{\"add_bos_token\": \"yes\"}", "tokenizer_config.json: add_bos_token must be true or false, not \"yes\"")]
    [InlineData("tokenizer.json", "{\"added_tokens\": [{\"id\": 1, \"content\": \"<s>\"}", "tokenizer.json: not valid JSON")]
    [InlineData("tokenizer.json", "\"tokenizer\"", "tokenizer.json: expected a JSON object")]
    [InlineData("genai_config.json", "{\"search\": {}}", "genai_config.json: has no \"model\" object")]
    [InlineData("genai_config.json", "{\"model\": {\"context_length\": -1}}", "genai_config.json: context_length must be a non-negative integer, not -1")]
    public void A_malformed_file_is_refused_naming_the_file_and_the_problem(string file, string text, string reason)
    {
        Write("tokenizer.json", TokenizerJson);
        Write(file, text);
        var e = Assert.Throws<ModelConfigException>(() => Read());
        Assert.StartsWith(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_tokenizer_file_is_relative_to_the_model_directory_whatever_the_version()
    {
        var version = Directory.CreateDirectory(Path.Combine(_model, "12")).FullName;
        File.WriteAllText(Path.Combine(version, "tokenizer.json"), TokenizerJson);
        var layer = Assert.Single(HuggingFaceFiles.Read(version, _model));
        Assert.Equal("12/tokenizer.json", layer.Values.Generation!.Tokenizer!.File);
    }
}
