using InferenceServer.Backends;
using InferenceServer.Backends.OnnxRuntime;
using InferenceServer.Backends.TorchSharp;

namespace InferenceServer.Hosting;

/// <summary>
/// The engines the server loads models with, registered in one place. Each is a project of its own behind
/// <see cref="IModelBackend"/> (Core references no engine); the repository picks one per model by its configured
/// <c>backend</c> name or <c>platform</c>, or by the model file's name. A third engine is one new project and one line here.
/// </summary>
internal static class ModelBackends
{
    public static IServiceCollection AddModelBackends(this IServiceCollection services)
    {
        services.AddSingleton<IModelBackend, OnnxRuntimeBackend>();   // "onnxruntime", onnxruntime_onnx, model.onnx
        services.AddSingleton<IModelBackend, TorchSharpBackend>();    // "pytorch", pytorch_libtorch, model.pt
        return services;
    }
}
