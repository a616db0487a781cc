using InferenceServer.ModelBuilder;
using InferenceServer.ModelBuilder.Decoders;
using Xunit.Abstractions;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The FLOAT16 variant: KV inputs and outputs and logits in float16; it loads, runs, decodes through its own cache like
/// its full recomputation, and stays close to the FP32 model of the same seed.
/// </summary>
public sealed class DecoderPrecisionTests(ITestOutputHelper output)
{
    /// <summary>
    /// FP16 logits against the FP32 model's: half precision keeps about 3 significant digits and the logits spread
    /// about 1 (measured on x64, where ONNX Runtime's CPU provider computes half-precision MatMuls in FLOAT: 3e-3).
    /// </summary>
    private const float Fp16VsFp32Tolerance = 2e-2f;

    /// <summary>FP16 KV decoding against FP16 full recomputation (measured on x64: under 1e-5; room for native half kernels).</summary>
    private const float Fp16KvTolerance = 5e-3f;

    [Fact]
    public void Fp16_model_runs_with_float16_cache_and_logits_close_to_the_fp32_model()
    {
        var fp16Options = SmallDecoderFixture.Options with { Precision = DecoderPrecision.Float16 };
        using var fp16 = DecoderSession.Create(fp16Options);
        using var fp32 = DecoderSession.Create(SmallDecoderFixture.Options);
        Assert.All(fp16.Session.InputMetadata.Where(i => i.Key.StartsWith("past_key_values.", StringComparison.Ordinal)),
            i => Assert.Equal(typeof(Microsoft.ML.OnnxRuntime.Float16), i.Value.ElementType));
        Assert.Equal(typeof(Microsoft.ML.OnnxRuntime.Float16), fp16.Session.OutputMetadata[OptimumDecoderLayout.Logits].ElementType);

        long[] tokens = SmallDecoderFixture.Prompt("fp16", 12);
        var half = fp16.RunFull(tokens);
        var single = fp32.RunFull(tokens);
        float vsFp32 = Enumerable.Range(0, tokens.Length).Max(s => Logits.MaxAbsDiff(half.At(0, s), single.At(0, s)));

        // Prefill 6, then one token at a time through the float16 present tensors.
        var cache = KvCache.Empty(fp16Options, 1);
        float kv = 0;
        for (int done = 0; done < tokens.Length;)
        {
            int chunk = done == 0 ? 6 : 1;
            var step = fp16.Run([tokens[done..(done + chunk)]], [DecoderSession.Ones(done + chunk)], [SmallDecoderFixture.Range(done, chunk)], cache);
            for (int j = 0; j < chunk; j++)
            {
                kv = Math.Max(kv, Logits.MaxAbsDiff(half.At(0, done + j), step.At(0, j)));
            }

            cache = step.Present;
            done += chunk;
        }

        int sameArgmax = Enumerable.Range(0, tokens.Length).Count(s => Logits.Top(half.At(0, s)).Token == Logits.Top(single.At(0, s)).Token);
        output.WriteLine($"max |fp16 - fp32| logits: {vsFp32:E2}; max |fp16 kv - fp16 full|: {kv:E2}; arg-max agreement {sameArgmax}/{tokens.Length}");
        Assert.True(vsFp32 <= Fp16VsFp32Tolerance, $"FP16 logits differ from FP32 by {vsFp32}");
        Assert.True(kv <= Fp16KvTolerance, $"FP16 KV decoding differs from its full recomputation by {kv}");
        // Not vacuous: half precision does round (the two models are different graphs with different numbers).
        Assert.True(vsFp32 > 0);
    }

    [Fact]
    public void Fp16_weights_are_the_fp32_weights_rounded_to_half()
    {
        var fp16 = OnnxModel(SmallDecoderFixture.Options with { Precision = DecoderPrecision.Float16 });
        var fp32 = OnnxModel(SmallDecoderFixture.Options);
        var half = TensorProtoFile.FromProto(fp16.Graph.Initializer.Single(t => t.Name == DecoderWeights.LmHead)).ToArray<Half>();
        var single = TensorProtoFile.FromProto(fp32.Graph.Initializer.Single(t => t.Name == DecoderWeights.LmHead)).ToArray<float>();
        Assert.Equal(single.Select(v => (Half)v), half);
        Assert.Equal((int)TensorElementKind.Float16, fp16.Graph.Input.Single(i => i.Name == "past_key_values.0.key").Type.TensorType.ElemType);
    }

    private static InferenceServer.ModelBuilder.Onnx.ModelProto OnnxModel(DecoderOptions options) =>
        InferenceServer.ModelBuilder.Onnx.ModelProto.Parser.ParseFrom(DecoderModelWriter.EmbeddedModelBytes(options));
}
