using System.Runtime.InteropServices;

namespace InferenceServer.Backends.OnnxRuntime;

/// <summary>
/// Why ONNX Runtime's CUDA provider library does not load. ONNX Runtime reports only "Failed to load shared library"
/// to its caller (the missing dependency goes to its own log), so after such a failure the server loads the provider
/// itself: the loader's message names the first library it could not find, e.g. <c>libcublasLt.so.13</c> when the CUDA
/// 13 runtime is not installed.
/// </summary>
internal static class CudaProviderLibrary
{
    private const string FileName = "libonnxruntime_providers_cuda.so";

    /// <summary>"; " and the loader's reason when the provider library is there and cannot be loaded; otherwise "".</summary>
    public static string WhyItDoesNotLoad() =>
        Find() is { } path && LoadError(path) is { } reason
            ? $"; {FileName} does not load ({reason}): it needs the CUDA 13 runtime libraries, cuDNN 9 and an NVIDIA driver 580 or later (docs/docker.md)"
            : "";

    /// <summary>The dynamic loader's reason why <paramref name="path"/> does not load, or null when it loads.</summary>
    internal static string? LoadError(string path)
    {
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(path));
            return null;
        }
        catch (DllNotFoundException e)
        {
            return Reason(e.Message, path);
        }
    }

    /// <summary>The provider beside ONNX Runtime's own library, where ONNX Runtime looks for it.</summary>
    private static string? Find()
    {
        var baseDirectory = AppContext.BaseDirectory;
        return new[]
            {
                Path.Combine(baseDirectory, FileName),
                Path.Combine(baseDirectory, "runtimes", RuntimeInformation.RuntimeIdentifier, "native", FileName),
                Path.Combine(baseDirectory, "runtimes", "linux-x64", "native", FileName),
            }
            .FirstOrDefault(File.Exists);
    }

    /// <summary>The dynamic loader's own words: .NET's message lists dlerror() for each name it tried, one per line,
    /// after its advice; the path itself is one of them.</summary>
    private static string Reason(string message, string path)
    {
        var lines = message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return lines.Skip(1).FirstOrDefault(l => l.StartsWith(path + ":", StringComparison.Ordinal)) is { } own
            ? own[(path.Length + 1)..].Trim()
            : lines.Skip(1).FirstOrDefault() ?? lines[0];
    }
}
