using System.Runtime.InteropServices;
using InferenceServer.Configuration;
using InferenceServer.Repository;
using InferenceServer.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace InferenceServer.Backends.TorchSharp;

/// <summary>
/// Loads TorchScript modules (<c>torch.jit.save</c> output) through TorchSharp, on the CPU or a CUDA device. TorchScript
/// files do not describe their inputs and outputs, so the configuration must declare them: inputs are passed to
/// <c>forward</c> positionally in the declared order, and the outputs (a tensor, or a tuple/list of tensors) are
/// named in the declared order.
/// </summary>
public sealed class TorchSharpBackend : IModelBackend
{
    private static readonly Lock ThreadsLock = new();

    /// <summary>Before libtorch (and its OpenMP runtime) loads: see <see cref="OpenMpWaitPolicy"/>.</summary>
    static TorchSharpBackend() => OpenMpWaitPolicy.PreferPassive();

    /// <inheritdoc />
    public string Name => "pytorch";

    /// <inheritdoc />
    public string Platform => "pytorch_libtorch";

    /// <inheritdoc />
    public string DefaultModelFilename => "model.pt";

    /// <inheritdoc />
    public IBackendModel Load(BackendLoadRequest request)
    {
        if (!File.Exists(request.ModelPath))
        {
            throw new ModelLoadException($"model file '{Path.GetFileName(request.ModelPath)}' not found in version {request.Version}");
        }
        if (request.DeclaredInputs.Count == 0 || request.DeclaredOutputs.Count == 0)
        {
            throw new ModelLoadException(
                "TorchScript models do not describe their inputs and outputs: declare every input and output (name, data_type, dims) in config.yaml, in forward()'s order");
        }
        foreach (var tensor in request.DeclaredInputs.Concat(request.DeclaredOutputs))
        {
            if (TorchScriptModel.ToTorch(tensor.DataType) is null)
            {
                throw new ModelLoadException($"'{tensor.Name}' is {tensor.DataType.ConfigName()}, which TorchScript tensors cannot hold");
            }
        }
        var device = SelectDevice(request);
        ApplyThreads(request.Parameters);
        jit.ScriptModule module;
        try
        {
            module = device.type == DeviceType.CUDA ? jit.load(request.ModelPath, DeviceType.CUDA, device.index) : jit.load(request.ModelPath);
        }
        catch (TypeInitializationException e)
        {
            throw new ModelLoadException("TorchSharp's native libraries could not be loaded: " + NativeLoadReason(e), e);
        }
        catch (Exception e) when (e is ExternalException or ArgumentException or IOException)
        {
            var message = TorchScriptModel.CleanMessage(e.Message)
                .Replace(request.ModelPath, $"{request.ModelName}/{request.Version}/{Path.GetFileName(request.ModelPath)}", StringComparison.Ordinal);
            throw new ModelLoadException("TorchSharp could not load the TorchScript module: " + message, e);
        }
        module.eval();
        var signature = new ModelSignature(request.DeclaredInputs, request.DeclaredOutputs);
        return new TorchScriptModel(module, signature, device);
    }

    private static Device SelectDevice(BackendLoadRequest request)
    {
        if (DeviceName.IsCpu(request.Device))
        {
            return CPU;
        }
        if (!DeviceName.IsCuda(request.Device, out var id))
        {
            throw new ModelLoadException($"device '{request.Device}' is not 'cpu' or 'cuda:N'");
        }
        bool available;
        try
        {
            available = cuda.is_available() && id < cuda.device_count();
        }
        catch (TypeInitializationException e)
        {
            throw new ModelLoadException("TorchSharp's native libraries could not be loaded: " + NativeLoadReason(e), e);
        }
        if (available)
        {
            return new Device(DeviceType.CUDA, id);
        }
        if (request.AllowCpuFallback)
        {
            return CPU;
        }
        throw new ModelLoadException(
            $"device '{request.Device}' requested but libtorch sees no such CUDA device (the server ships libtorch's CPU build, also in the CUDA image: docs/docker.md); " +
            "set device: cpu, or allow_cpu_fallback: true to run on the CPU");
    }

    /// <summary>libtorch's thread pools are per process; the last model loaded with the parameters sets them.</summary>
    private static void ApplyThreads(IReadOnlyDictionary<string, string> parameters)
    {
        lock (ThreadsLock)
        {
            if (parameters.TryGetValue("intra_op_num_threads", out var intra) && int.TryParse(intra, out var n) && n > 0)
            {
                set_num_threads(n);
            }
        }
    }

    private static string NativeLoadReason(Exception e)
    {
        var inner = e;
        while (inner.InnerException is not null)
        {
            inner = inner.InnerException;
        }
        var reason = TorchScriptModel.CleanMessage(inner.Message);
        if (reason.Contains("GLIBCXX", StringComparison.Ordinal) || !LibStdCxxCompat.SystemLibStdCxxIsNewEnough())
        {
            reason += " (this system's libstdc++ is older than TorchSharp needs; start the server through its own program, "
                + "which re-executes under the private runtime prepared by server/compat/prepare-libstdcxx.sh)";
        }
        return reason;
    }
}
