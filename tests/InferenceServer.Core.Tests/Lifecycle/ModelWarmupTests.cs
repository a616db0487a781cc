using System.Buffers.Binary;
using System.Runtime.InteropServices;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Lifecycle;
using InferenceServer.Repository;
using InferenceServer.Tensors;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Lifecycle;

/// <summary><c>model_warmup</c>: parsing, and the checks and data of each sample against a resolved configuration.</summary>
public sealed class ModelWarmupTests
{
    /// <summary>A batching model (max_batch_size 4): FP32 "x" [-1, 3] and optional INT32 "mask" [2]; BYTES "text" [2].</summary>
    private static ModelConfig Batching(int maxBatchSize = 4) => new()
    {
        Name = "m",
        MaxBatchSize = maxBatchSize,
        Inputs =
        [
            new TensorConfig("x", DataType.Fp32, [-1, 3]),
            new TensorConfig("text", DataType.Bytes, [2]),
            new TensorConfig("mask", DataType.Int32, [2], Optional: true),
        ],
        Outputs = [new TensorConfig("y", DataType.Fp32, [-1, 3])],
    };

    private static ModelWarmup Resolve(string yaml, ModelConfig? config = null, string? directory = null) =>
        ModelWarmup.Resolve(ModelConfigFile.Parse(yaml).ModelWarmup, config ?? Batching(), directory ?? Paths.NewTempDirectory("warmup-unit"));

    private const string ZeroSample = """
        model_warmup:
          - name: zeros
            batch_size: 2
            count: 3
            inputs:
              x: {data_type: TYPE_FP32, dims: [5, 3], zero_data: true}
              text: {data_type: TYPE_STRING, dims: [2], zero_data: true}
        """;

    [Fact]
    public void Parses_every_field_in_tritons_names()
    {
        var file = ModelConfigFile.Parse("""
            model_warmup:
              - name: s
                batch_size: 2
                count: 3
                inputs:
                  a: {data_type: TYPE_FP32, dims: [1, 2], zero_data: true}
                  b: {data_type: INT64, dims: [4], random_data: true}
                  c: {data_type: TYPE_STRING, dims: [1], input_data_file: c.bin}
            """);
        var sample = Assert.Single(file.ModelWarmup!);
        Assert.Equal(("s", 2, 3), (sample.Name, sample.BatchSize, sample.Count));
        Assert.Equal([1, 2], sample.Inputs!["a"].Dims);
        Assert.True(sample.Inputs["a"].ZeroData);
        Assert.True(sample.Inputs["b"].RandomData);
        Assert.Equal("c.bin", sample.Inputs["c"].InputDataFile);
        Assert.Equal("TYPE_STRING", sample.Inputs["c"].DataType);
    }

    [Fact]
    public void A_typo_in_a_warmup_field_is_refused()
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfigFile.Parse("model_warmup: [{name: s, batch_sise: 2}]"));
        Assert.Contains("batch_sise", e.Message);
    }

    [Fact]
    public void Zero_data_fills_every_row_of_the_batch_and_an_optional_input_may_be_left_out()
    {
        var sample = Assert.Single(Resolve(ZeroSample).Samples);
        Assert.Equal(("zeros", 2, 3), (sample.Name, sample.BatchSize, sample.Count));
        // In the configuration's input order; "mask" is optional and not given.
        Assert.Equal(["x", "text"], sample.Inputs.Select(i => i.Name));
        var x = sample.Inputs[0];
        Assert.Equal([2, 5, 3], x.Shape);
        Assert.Equal(2 * 5 * 3 * sizeof(float), x.Data.Length);
        Assert.All(x.Data, b => Assert.Equal(0, b));
        // BYTES zero data: every element an empty string (a zero length).
        var text = sample.Inputs[1];
        Assert.Equal([2, 2], text.Shape);
        Assert.True(BytesElements.TryCount(text.Data, out var strings));
        Assert.Equal(4, strings);
        Assert.All(text.Data, b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData("", 1)]
    [InlineData("batch_size: 0", 1)]
    [InlineData("batch_size: 4", 4)]
    public void Batch_size_zero_or_absent_is_one(string batchLine, long rows)
    {
        var sample = Assert.Single(Resolve($$"""
            model_warmup:
              - name: s
                {{batchLine}}
                inputs:
                  x: {data_type: FP32, dims: [1, 3], zero_data: true}
                  text: {data_type: BYTES, dims: [2], zero_data: true}
            """).Samples);
        Assert.Equal(rows, sample.Inputs[0].Shape[0]);
        Assert.Equal(1, sample.Count);
    }

    [Fact]
    public void A_model_without_a_batch_dimension_gets_the_dims_as_they_are()
    {
        var config = new ModelConfig
        {
            Name = "m",
            MaxBatchSize = 0,
            Inputs = [new TensorConfig("x", DataType.Int64, [-1])],
            Outputs = [new TensorConfig("y", DataType.Int64, [-1])],
        };
        var sample = Assert.Single(Resolve("model_warmup: [{name: s, count: 0, inputs: {x: {data_type: TYPE_INT64, dims: [7], random_data: true}}}]", config).Samples);
        Assert.Equal([7], sample.Inputs[0].Shape);
        Assert.Equal(1, sample.Count);
        var values = MemoryMarshal.Cast<byte, long>(sample.Inputs[0].Data).ToArray();
        Assert.All(values, v => Assert.InRange(v, 0, 127));
        Assert.True(values.Distinct().Count() > 1, "random data came out constant");
    }

    [Fact]
    public void Random_floats_vary_and_stay_small_and_every_row_is_the_same_sample()
    {
        var sample = Assert.Single(Resolve("""
            model_warmup:
              - name: noise
                batch_size: 3
                inputs:
                  x: {data_type: TYPE_FP32, dims: [4, 3], random_data: true}
                  text: {data_type: TYPE_STRING, dims: [2], random_data: true}
            """).Samples);
        var x = MemoryMarshal.Cast<byte, float>(sample.Inputs[0].Data).ToArray();
        Assert.Equal(3 * 12, x.Length);
        Assert.All(x, v => Assert.InRange(v, -1f, 1f));
        Assert.True(x.Distinct().Count() > 1, "random data came out constant");
        Assert.Equal(x[..12], x[12..24]);
        Assert.Equal(x[..12], x[24..]);
        // Random strings: well-formed, non-empty, lower-case letters.
        ReadOnlySpan<byte> text = sample.Inputs[1].Data;
        for (var i = 0; i < 6; i++)
        {
            var element = BytesElements.ReadNext(ref text);
            Assert.InRange(element.Length, 1, 8);
            foreach (var c in element)
            {
                Assert.InRange(c, (byte)'a', (byte)'z');
            }
        }
        Assert.True(text.IsEmpty);
    }

    [Fact]
    public void Random_token_ids_of_a_generative_model_stay_inside_the_vocabulary()
    {
        // The logits are wider than the tokenizer's vocabulary (5 of 8): the ids stay inside the vocabulary.
        var config = new ModelConfig
        {
            Name = "lm",
            MaxBatchSize = 2,
            Inputs = [new TensorConfig("tokens", DataType.Int64, [64])],
            Outputs = [new TensorConfig("logits", DataType.Fp32, [64, 8])],
            Generation = new GenerationSettings
            {
                Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "abcde" },
                ContextWindow = 64,
                InputName = "tokens",
                LogitsName = "logits",
                LogitsWidth = 8,
                MaxRunningSequences = 2,
                MaxWaitingSequences = 1,
            },
        };
        var entries = ModelConfigFile.Parse("model_warmup: [{name: s, inputs: {tokens: {data_type: TYPE_INT64, dims: [64], random_data: true}}}]").ModelWarmup;
        var sample = Assert.Single(ModelWarmup.Resolve(entries, config, Paths.NewTempDirectory("warmup-unit"), tokenVocabulary: 5).Samples);
        var ids = MemoryMarshal.Cast<byte, long>(sample.Inputs[0].Data).ToArray();
        Assert.All(ids, id => Assert.InRange(id, 0, 4));
        Assert.True(ids.Distinct().Count() > 1, "random ids came out constant");
    }

    [Fact]
    public void Input_data_files_are_read_from_the_models_warmup_directory()
    {
        var directory = Paths.NewTempDirectory("warmup-files");
        Directory.CreateDirectory(Path.Combine(directory, "warmup"));
        float[] row = [1.5f, -2f, 3.25f, 0f, 7f, -0.5f];
        File.WriteAllBytes(Path.Combine(directory, "warmup", "x.bin"), MemoryMarshal.AsBytes(row.AsSpan()).ToArray());
        File.WriteAllBytes(Path.Combine(directory, "warmup", "text.bin"), Strings("héllo", ""));
        var sample = Assert.Single(Resolve("""
            model_warmup:
              - name: from_files
                batch_size: 2
                inputs:
                  x: {data_type: TYPE_FP32, dims: [2, 3], input_data_file: x.bin}
                  text: {data_type: TYPE_STRING, dims: [2], input_data_file: text.bin}
            """, directory: directory).Samples);
        Assert.Equal([2, 2, 3], sample.Inputs[0].Shape);
        Assert.Equal([.. row, .. row], MemoryMarshal.Cast<byte, float>(sample.Inputs[0].Data).ToArray());
        Assert.Equal([.. Strings("héllo", ""), .. Strings("héllo", "")], sample.Inputs[1].Data);
    }

    private static byte[] Strings(params string[] values)
    {
        var bytes = new List<byte>();
        foreach (var value in values)
        {
            var utf8 = System.Text.Encoding.UTF8.GetBytes(value);
            var length = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)utf8.Length);
            bytes.AddRange(length);
            bytes.AddRange(utf8);
        }
        return [.. bytes];
    }

    private const string Text = "text: {data_type: TYPE_STRING, dims: [2], zero_data: true}";

    [Theory]
    [InlineData("[{inputs: {}}]", "model_warmup[0] needs a name")]
    [InlineData("[{name: s, inputs: {" + Text + "}}]", "input 'x' is missing")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3], zero_data: true}, " + Text + ", z: {data_type: FP32, dims: [1], zero_data: true}}}]", "no input 'z'")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP64, dims: [1, 3], zero_data: true}, " + Text + "}}]", "is TYPE_FP32, not TYPE_FP64")]
    [InlineData("[{name: s, inputs: {x: {data_type: FLOAT, dims: [1, 3], zero_data: true}, " + Text + "}}]", "unknown data_type 'FLOAT'")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 4], zero_data: true}, " + Text + "}}]", "do not match the input's [-1,3]")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [3], zero_data: true}, " + Text + "}}]", "do not match")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [-1, 3], zero_data: true}, " + Text + "}}]", "do not match")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, zero_data: true}, " + Text + "}}]", "needs dims")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3]}, " + Text + "}}]", "exactly one of")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3], zero_data: true, random_data: true}, " + Text + "}}]", "exactly one of")]
    [InlineData("[{name: s, batch_size: 5, inputs: {x: {data_type: FP32, dims: [1, 3], zero_data: true}, " + Text + "}}]", "batch_size 5 exceeds max_batch_size 4")]
    [InlineData("[{name: s, batch_size: -1, inputs: {}}]", "batch_size must not be negative")]
    [InlineData("[{name: s, count: -2, inputs: {}}]", "count must not be negative")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3], input_data_file: ../x.bin}, " + Text + "}}]", "must be a plain file name")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3], input_data_file: /etc/passwd}, " + Text + "}}]", "must be a plain file name")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3], input_data_file: nope.bin}, " + Text + "}}]", "'nope.bin' is not in the model's warmup/ directory")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3], input_data_file: short.bin}, " + Text + "}}]", "has 8 bytes, but 3 TYPE_FP32 elements take 12")]
    [InlineData("[{name: s, inputs: {x: {data_type: FP32, dims: [1, 3], zero_data: true}, text: {data_type: TYPE_STRING, dims: [2], input_data_file: cut.bin}}}]", "must hold 2 strings")]
    public void Invalid_samples_say_what_is_wrong(string samples, string mentions)
    {
        var directory = Paths.NewTempDirectory("warmup-invalid");
        Directory.CreateDirectory(Path.Combine(directory, "warmup"));
        File.WriteAllBytes(Path.Combine(directory, "warmup", "short.bin"), new byte[8]);
        // A string whose length (5) runs past the end of the file.
        File.WriteAllBytes(Path.Combine(directory, "warmup", "cut.bin"), [0, 0, 0, 0, 5, 0, 0, 0, (byte)'a']);
        var e = Assert.Throws<ModelConfigException>(() => Resolve("model_warmup: " + samples, directory: directory));
        Assert.Contains(mentions, e.Message);
    }

    [Fact]
    public void A_model_without_a_batch_dimension_takes_no_batch_size_above_one()
    {
        var config = Batching(maxBatchSize: 0);
        var e = Assert.Throws<ModelConfigException>(() => Resolve(
            "model_warmup: [{name: s, batch_size: 2, inputs: {x: {data_type: FP32, dims: [1, 3], zero_data: true}, " + Text + "}}]", config));
        Assert.Contains("batch_size 2 needs a batch dimension, but max_batch_size is 0", e.Message);
        Assert.Single(Resolve("model_warmup: [{name: s, batch_size: 1, inputs: {x: {data_type: FP32, dims: [1, 3], zero_data: true}, " + Text + "}}]", config).Samples);
    }

    [Fact]
    public void No_model_warmup_means_no_samples()
    {
        Assert.Empty(Resolve("max_batch_size: 4").Samples);
        Assert.Equal(0, Resolve("model_warmup: []").ExecutionsPerInstance);
        Assert.Equal(5, Resolve(ZeroSample.Replace("count: 3", "count: 5", StringComparison.Ordinal)).ExecutionsPerInstance);
    }
}
