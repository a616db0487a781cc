namespace InferenceServer.Http.OpenAi;

/// <summary>The OpenAI-compatible API (section "OpenAi" of the configuration).</summary>
public sealed class OpenAiOptions
{
    /// <summary>
    /// When set, every <c>/v1</c> and <c>/openai/v1</c> OpenAI route requires <c>Authorization: Bearer &lt;key&gt;</c>
    /// (flag <c>--api-key</c>, environment <c>INFERENCE_API_KEY</c>). The KServe and Triton routes are not affected.
    /// </summary>
    public string? ApiKey { get; set; }
}
