using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Generation.Decoding;

/// <summary>
/// The window decoder: a model with an attention-mask input gets 1 for the window's tokens and 0 for its left padding
/// (the padding is no longer attended as if it were text), and FP16 logits reach the sampler as FP32.
/// </summary>
public sealed class WindowDecoderTests
{
    private static readonly TensorConfig[] Inputs =
    [
        new("input_ids", DataType.Int64, [6]),
        new("attention_mask", DataType.Int64, [6]),
    ];

    private static GenerationSettings Settings(DataType logits) => GenerationSettings.Resolve(
        new ModelConfigFile.GenerationEntry { Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "abcd" } },
        maxBatchSize: 4, Inputs, [new TensorConfig("logits", logits, [6, 4])]);

    [Fact]
    public void The_mask_input_is_found_by_name_and_marks_the_left_padding_with_zeros()
    {
        var settings = Settings(DataType.Fp32);
        Assert.Equal("attention_mask", settings.AttentionMaskName);
        var model = new RecordingModel(DataType.Fp32);
        using var decoder = new WindowDecoder(model, settings);
        var logits = new float[2 * 4];
        var timings = default(ExecutionTimings);
        decoder.Step([new Sequence([1, 2, 3]), new Sequence([0, 1, 2, 3, 0, 1, 2, 3])], logits, ref timings);

        Assert.Equal([0, 0, 0, 1, 2, 3, 2, 3, 0, 1, 2, 3], model.Ids);
        Assert.Equal([0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1], model.Mask);
        // Row b's logits are the last position's: 10·b + 5 + token index.
        Assert.Equal([5, 6, 7, 8, 15, 16, 17, 18], logits);
    }

    [Fact]
    public void Fp16_logits_are_read_as_fp32()
    {
        var settings = Settings(DataType.Fp16);
        Assert.Equal(DataType.Fp16, settings.LogitsType);
        using var decoder = new WindowDecoder(new RecordingModel(DataType.Fp16), settings);
        var logits = new float[4];
        var timings = default(ExecutionTimings);
        decoder.Step([new Sequence([1])], logits, ref timings);
        Assert.Equal([5, 6, 7, 8], logits);
    }

    [Fact]
    public void An_input_the_window_decoder_cannot_feed_is_refused_at_load()
    {
        var error = Assert.Throws<ModelConfigException>(() => GenerationSettings.Resolve(
            new ModelConfigFile.GenerationEntry { Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = "abcd" }, InputIds = "input_ids" },
            4, [.. Inputs, new TensorConfig("token_type_ids", DataType.Int64, [6])], [new TensorConfig("logits", DataType.Fp32, [6, 4])]));
        Assert.Contains("token_type_ids", error.Message, StringComparison.Ordinal);
    }

    private sealed class Sequence : DecoderSequence
    {
        public Sequence(int[] tokens) => Tokens.AddRange(tokens);
    }

    /// <summary>Records the ids and mask it is fed; its logits at [b, p, v] are 10·b + p + v (as FP32 or FP16).</summary>
    private sealed class RecordingModel(DataType logitsType) : IBackendModel
    {
        public long[] Ids { get; private set; } = [];

        public long[] Mask { get; private set; } = [];

        public ModelSignature Signature { get; } = new(Inputs, []);

        public string ExecutionProvider => "test";

        public void Execute(EngineRun run, ref ExecutionTimings timings)
        {
            Ids = run.Inputs.Single(t => t.Name == "input_ids").Elements<long>().ToArray();
            Mask = run.Inputs.Single(t => t.Name == "attention_mask").Elements<long>().ToArray();
            var rows = (int)run.Inputs[0].Shape[0];
            var values = new float[rows * 6 * 4];
            for (var b = 0; b < rows; b++)
            {
                for (var p = 0; p < 6; p++)
                {
                    for (var v = 0; v < 4; v++)
                    {
                        values[(((b * 6) + p) * 4) + v] = (10 * b) + p + v;
                    }
                }
            }
            var bytes = logitsType == DataType.Fp16
                ? MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray()
                : MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            run.Outputs.Single().Result = new Tensor("logits", logitsType, [rows, 6, 4], TensorBuffer.CopyOf(bytes));
        }

        public void Dispose()
        {
        }
    }
}
