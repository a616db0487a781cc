using InferenceServer.ModelBuilder;

namespace InferenceServer.Perf;

/// <summary>
/// A fully connected network, FP32 <c>input [batch, width]</c> → (MatMul, Add, Relu) × hidden layers → MatMul, Add →
/// <c>output [batch, outputs]</c>, with a symbolic batch dimension and deterministic random weights. The default
/// 2048 → 2048 → 2048 → 16 has about 8.4 M weights (34 MB): at batch 1 each call streams every weight from memory
/// once for two multiply-adds per weight, so it is memory-bound and batching multiplies the work done per byte read.
/// </summary>
internal static class MlpModel
{
    public const string InputName = "input";
    public const string OutputName = "output";

    public static void Write(string path, int width = 2048, int hiddenLayers = 2, int outputs = 16, int seed = 7)
    {
        var random = new Random(seed);
        var builder = new OnnxGraphBuilder("mlp").Input(InputName, TensorElementKind.Float, "batch", width);
        var previous = InputName;
        for (var layer = 0; layer <= hiddenLayers; layer++)
        {
            var last = layer == hiddenLayers;
            var columns = last ? outputs : width;
            builder.Initializer($"w{layer}", [width, columns], Weights(random, width * columns, 1 / MathF.Sqrt(width)))
                .Initializer($"b{layer}", [columns], Weights(random, columns, 0.01f))
                .Node("MatMul", [previous, $"w{layer}"], [$"mm{layer}"])
                .Node("Add", [$"mm{layer}", $"b{layer}"], [last ? OutputName : $"pre{layer}"]);
            if (!last)
            {
                builder.Node("Relu", [$"pre{layer}"], [$"h{layer}"]);
                previous = $"h{layer}";
            }
        }
        builder.Output(OutputName, TensorElementKind.Float, "batch", outputs).Save(path);
    }

    /// <summary>Weights uniform in [-scale, scale] (never denormal, so no slow paths).</summary>
    private static float[] Weights(Random random, int count, float scale)
    {
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (random.NextSingle() * 2 - 1) * scale;
        }
        return values;
    }
}
