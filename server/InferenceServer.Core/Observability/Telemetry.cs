using System.Diagnostics;
using System.Globalization;
using InferenceServer.Inference;

namespace InferenceServer.Observability;

/// <summary>
/// The server's OpenTelemetry source and the attribute names it sets: OpenTelemetry's GenAI and general conventions
/// where they have a name, the <c>inference.</c> prefix where they have none.
/// </summary>
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

    /// <summary>inference.model.name: the model version's name.</summary>
    public const string ModelName = "inference.model.name";

    /// <summary>inference.model.version: the version that served the request ("1").</summary>
    public const string ModelVersion = "inference.model.version";

    /// <summary>inference.batch_size: rows (batch-dimension entries) in the engine execution the request ran in, its own and those batched with it.</summary>
    public const string BatchSize = "inference.batch_size";

    /// <summary>inference.queue.duration: seconds the request waited in the model's queue before its execution started.</summary>
    public const string QueueDuration = "inference.queue.duration";

    /// <summary>
    /// inference.outcome: <see cref="Success"/>, or what went wrong: invalid_argument, not_found, unavailable,
    /// resource_exhausted, failed_precondition, internal, deadline_exceeded or cancelled.
    /// </summary>
    public const string Outcome = "inference.outcome";

    /// <summary>error.type (OpenTelemetry's general attribute): the outcome of a failed request.</summary>
    public const string ErrorType = "error.type";

    /// <summary>The <see cref="Outcome"/> of a request that was answered.</summary>
    public const string Success = "success";

    /// <summary>The <see cref="Outcome"/> of a request whose client went away, or that the server dropped while stopping.</summary>
    public const string Cancelled = "cancelled";

    /// <summary>
    /// Starts the span of one tensor inference on <paramref name="version"/> (named <c>infer {model}</c>), a child of the
    /// current one; null, at no cost, when nobody listens.
    /// </summary>
    internal static Activity? StartInference(string model, long version)
    {
        if (!Source.HasListeners())
        {
            return null;
        }
        var activity = Source.StartActivity("infer " + model, ActivityKind.Internal);
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(ModelName, model);
            activity.SetTag(ModelVersion, version.ToString(CultureInfo.InvariantCulture));
        }
        return activity;
    }

    /// <summary>Records on a request's span the execution it ran in: its rows, and how long it waited since it was queued at <paramref name="enqueued"/>.</summary>
    internal static void RecordExecution(Activity? activity, long rows, long enqueued, long started)
    {
        if (activity is { IsAllDataRequested: true })
        {
            activity.SetTag(BatchSize, rows);
            activity.SetTag(QueueDuration, Stopwatch.GetElapsedTime(enqueued, started).TotalSeconds);
        }
    }

    /// <summary>Marks a span as answered.</summary>
    internal static void RecordSuccess(Activity? activity) => activity?.SetTag(Outcome, Success);

    /// <summary>Marks a span as failed by <paramref name="error"/>: its outcome, <c>error.type</c> and the error status with the (client-safe) message.</summary>
    internal static void RecordFailure(Activity? activity, Exception error)
    {
        if (activity is not null)
        {
            RecordFailure(activity, OutcomeOf(error), error.Message);
        }
    }

    /// <summary>Marks a span as failed with <paramref name="outcome"/>.</summary>
    internal static void RecordFailure(Activity? activity, string outcome, string message)
    {
        if (activity is null)
        {
            return;
        }
        activity.SetTag(Outcome, outcome);
        activity.SetTag(ErrorType, outcome);
        activity.SetStatus(ActivityStatusCode.Error, message);
    }

    // The outcome names are the status names in lower case (invalid_argument, cancelled, ...), made once.
    private static readonly string[] OutcomeNames =
        [.. Enum.GetValues<InferenceErrorKind>().Select(k => InferenceStatus.Name(k).ToLowerInvariant()), Cancelled];

    /// <summary>The <see cref="Outcome"/> a failure gives a request.</summary>
    public static string OutcomeOf(Exception error) =>
        InferenceStatus.KindOf(error) is { } kind ? OutcomeNames[(int)kind] : Cancelled;
}
