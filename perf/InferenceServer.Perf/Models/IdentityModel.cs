using InferenceServer.ModelBuilder;

namespace InferenceServer.Perf;

/// <summary>FP32 <c>INPUT0 [batch, n]</c> → Identity → <c>OUTPUT0 [batch, n]</c>, both dimensions symbolic: the payload and overhead model.</summary>
internal static class IdentityModel
{
    public const string InputName = "INPUT0";
    public const string OutputName = "OUTPUT0";

    public static void Write(string path) =>
        new OnnxGraphBuilder("identity")
            .Input(InputName, TensorElementKind.Float, "batch", "n")
            .Node("Identity", [InputName], [OutputName])
            .Output(OutputName, TensorElementKind.Float, "batch", "n")
            .Save(path);
}
