using System.Text.Json;
using System.Text.Json.Serialization;

namespace InferenceServer.Mesh.Canary;

/// <summary>The phases of a rollout.</summary>
public static class CanaryPhase
{
    /// <summary>Moving through the steps (a meshctl loop is, or should be, running it).</summary>
    public const string Progressing = "Progressing";

    /// <summary>The last step passed: the canary has 100 %.</summary>
    public const string Succeeded = "Succeeded";

    /// <summary>An analysis failed (or stayed inconclusive past --max-wait): rolled back to 100 % stable.</summary>
    public const string Failed = "Failed";

    /// <summary>Promoted by hand (<c>canary promote</c>): 100 % canary without the remaining analysis.</summary>
    public const string Promoted = "Promoted";

    /// <summary>Aborted by hand (<c>canary abort</c>): 100 % stable.</summary>
    public const string Aborted = "Aborted";

    /// <summary>Someone else changed the weights during the rollout; meshctl stopped without touching them.</summary>
    public const string Halted = "Halted";
}

/// <summary>One line of a rollout's history.</summary>
public sealed record CanaryEvent(DateTimeOffset At, string Event, int CanaryWeight, string Message);

/// <summary>
/// A rollout's state, kept as JSON in the VirtualService annotation <see cref="AnnotationKey"/>: everything a restarted
/// meshctl needs to continue (the plan, the step and when it started) and what <c>canary status</c> shows.
/// </summary>
public sealed class CanaryState
{
    /// <summary>The VirtualService annotation holding the state.</summary>
    public const string AnnotationKey = "inference.dotnet/canary";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };

    public string Phase { get; set; } = CanaryPhase.Progressing;

    public string Stable { get; set; } = "";

    public string Canary { get; set; } = "";

    public List<int> Steps { get; set; } = [];

    /// <summary>The step being analysed (0-based).</summary>
    public int StepIndex { get; set; }

    public DateTimeOffset StartedAt { get; set; }

    public DateTimeOffset StepStartedAt { get; set; }

    /// <summary>The canary weight meshctl last wrote; any other weight in the split routes means someone else changed it.</summary>
    public int CanaryWeight { get; set; }

    public TimeSpan Pause { get; set; }

    public TimeSpan Interval { get; set; }

    public TimeSpan? MaxWait { get; set; }

    public CanaryThresholds Thresholds { get; set; } = new(0.05, TimeSpan.FromSeconds(2.5), null, 100);

    public List<string> Sources { get; set; } = [];

    public string CanaryDeployment { get; set; } = "";

    public CanaryAnalysis? LastAnalysis { get; set; }

    /// <summary>Why the rollout failed, halted or was stopped by hand.</summary>
    public string? Reason { get; set; }

    public List<CanaryEvent> History { get; set; } = [];

    /// <summary>The plan recorded in the state (a resumed rollout follows it, whatever the new command line says).</summary>
    public CanaryPlan Plan => new(Steps, Pause, Interval, MaxWait, Thresholds, Sources, CanaryDeployment);

    /// <summary>A new rollout at its first step.</summary>
    public static CanaryState Start(CanaryTarget target, CanaryPlan plan, DateTimeOffset now) => new()
    {
        Stable = target.Stable,
        Canary = target.Canary,
        Steps = [.. plan.Steps],
        StartedAt = now,
        StepStartedAt = now,
        CanaryWeight = plan.Steps[0],
        Pause = plan.Pause,
        Interval = plan.Interval,
        MaxWait = plan.MaxWait,
        Thresholds = plan.Thresholds,
        Sources = [.. plan.Sources],
        CanaryDeployment = plan.CanaryDeployment,
        History = [new CanaryEvent(now, "step", plan.Steps[0], $"step 1 of {plan.Steps.Count}: {target.Canary} at {plan.Steps[0]}%")],
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The state in the annotation's JSON; throws <see cref="InvalidOperationException"/> naming the annotation
    /// when it is not a rollout state.</summary>
    public static CanaryState FromJson(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<CanaryState>(json, Json) ?? throw new JsonException("null");
        }
        catch (JsonException e)
        {
            throw new InvalidOperationException($"the annotation {AnnotationKey} is not a meshctl rollout state ({e.Message}); remove it to start over", e);
        }
    }

    /// <summary>A deep copy (through JSON).</summary>
    public CanaryState Clone() => FromJson(ToJson());
}
