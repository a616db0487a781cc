using System.Diagnostics;

namespace InferenceServer.Observability;

/// <summary>The server's OpenTelemetry source and the attribute names it sets (OpenTelemetry's GenAI conventions).</summary>
public static class Telemetry
{
    /// <summary>The ActivitySource name to subscribe to ("InferenceServer").</summary>
    public const string SourceName = "InferenceServer";

    /// <summary>Spans of inference and generation requests.</summary>
    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>gen_ai.operation.name: chat, text_completion, generate.</summary>
    public const string OperationName = "gen_ai.operation.name";

    /// <summary>gen_ai.request.model.</summary>
    public const string RequestModel = "gen_ai.request.model";

    /// <summary>gen_ai.response.model (name:version).</summary>
    public const string ResponseModel = "gen_ai.response.model";

    /// <summary>gen_ai.request.max_tokens.</summary>
    public const string RequestMaxTokens = "gen_ai.request.max_tokens";

    /// <summary>gen_ai.request.temperature.</summary>
    public const string RequestTemperature = "gen_ai.request.temperature";

    /// <summary>gen_ai.request.top_p.</summary>
    public const string RequestTopP = "gen_ai.request.top_p";

    /// <summary>gen_ai.request.top_k.</summary>
    public const string RequestTopK = "gen_ai.request.top_k";

    /// <summary>gen_ai.usage.input_tokens.</summary>
    public const string UsageInputTokens = "gen_ai.usage.input_tokens";

    /// <summary>gen_ai.usage.output_tokens.</summary>
    public const string UsageOutputTokens = "gen_ai.usage.output_tokens";

    /// <summary>gen_ai.response.finish_reasons.</summary>
    public const string ResponseFinishReasons = "gen_ai.response.finish_reasons";

    /// <summary>gen_ai.response.id.</summary>
    public const string ResponseId = "gen_ai.response.id";
}
