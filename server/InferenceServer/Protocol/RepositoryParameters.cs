using InferenceServer.Inference;

namespace InferenceServer.Protocol;

/// <summary>
/// Load parameters of Triton's repository extension that this server does not implement: a configuration override
/// ("config") and model files sent in the request ("file:..."). Refusing them beats silently loading something else.
/// </summary>
internal static class RepositoryParameters
{
    public static void Check(IEnumerable<string> keys)
    {
        foreach (var key in keys)
        {
            if (key == "config" || key.StartsWith("file:", StringComparison.Ordinal))
            {
                throw InferenceException.InvalidArgument($"load parameter '{key}' is not supported: the model is loaded from the repository as it is");
            }
        }
    }
}
