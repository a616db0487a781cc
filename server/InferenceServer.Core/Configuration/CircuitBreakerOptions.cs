namespace InferenceServer.Configuration;

/// <summary>
/// A model's <c>circuit_breaker</c> section, resolved (Resilience4j's count-based settings). See the README's
/// "Circuit breaker" section.
/// </summary>
public sealed record CircuitBreakerOptions
{
    /// <summary>Percentage of failed calls in the window at or above which the breaker opens (default 50).</summary>
    public double FailureRateThreshold { get; init; } = 50;

    /// <summary>Percentage of slow calls in the window at or above which the breaker opens (default 100).</summary>
    public double SlowCallRateThreshold { get; init; } = 100;

    /// <summary>A call that takes longer than this is slow (default 60 s, as Resilience4j).</summary>
    public TimeSpan SlowCallDuration { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The last calls the rates are computed over (default 100).</summary>
    public int SlidingWindowSize { get; init; } = 100;

    /// <summary>Calls the window must hold before the rates are judged (default 100, at most the window).</summary>
    public int MinimumNumberOfCalls { get; init; } = 100;

    /// <summary>How long the breaker stays open before it lets trial calls through (default 60 s).</summary>
    public TimeSpan OpenDuration { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Trial calls let through while half-open; their rates decide between closing and reopening (default 10).</summary>
    public int HalfOpenCalls { get; init; } = 10;

    /// <summary>The model that serves the requests while the breaker is open; null: they fail with 503 / UNAVAILABLE.</summary>
    public string? FallbackModel { get; init; }

    /// <summary>Checks and resolves the section; null when the configuration has none. Throws <see cref="ModelConfigException"/>.</summary>
    public static CircuitBreakerOptions? Resolve(ModelConfigFile.CircuitBreakerEntry? entry, string modelName)
    {
        if (entry is null)
        {
            return null;
        }
        var defaults = new CircuitBreakerOptions();
        var window = entry.SlidingWindowSize ?? defaults.SlidingWindowSize;
        var options = new CircuitBreakerOptions
        {
            FailureRateThreshold = Percentage(entry.FailureRateThreshold ?? defaults.FailureRateThreshold, "failure_rate_threshold"),
            SlowCallRateThreshold = Percentage(entry.SlowCallRateThreshold ?? defaults.SlowCallRateThreshold, "slow_call_rate_threshold"),
            SlowCallDuration = Milliseconds(entry.SlowCallDurationMs, defaults.SlowCallDuration, "slow_call_duration_ms"),
            SlidingWindowSize = Between(window, 1, 10_000, "sliding_window_size"),
            MinimumNumberOfCalls = Between(entry.MinimumNumberOfCalls ?? Math.Min(defaults.MinimumNumberOfCalls, window), 1, window, "minimum_number_of_calls"),
            OpenDuration = Milliseconds(entry.OpenDurationMs, defaults.OpenDuration, "open_duration_ms"),
            HalfOpenCalls = Between(entry.HalfOpenCalls ?? defaults.HalfOpenCalls, 1, 10_000, "half_open_calls"),
            FallbackModel = entry.FallbackModel,
        };
        if (options.FallbackModel is { } fallback)
        {
            if (!ModelNames.IsValid(fallback))
            {
                throw new ModelConfigException($"circuit_breaker.fallback_model '{fallback}' is not a valid model name");
            }
            if (fallback == modelName)
            {
                throw new ModelConfigException("circuit_breaker.fallback_model must name another model, not the model itself");
            }
        }
        return options;
    }

    private static double Percentage(double value, string field) =>
        value is > 0 and <= 100 ? value : throw new ModelConfigException($"circuit_breaker.{field} must be a percentage in (0, 100], not {value}");

    private static int Between(int value, int min, int max, string field) =>
        value >= min && value <= max ? value : throw new ModelConfigException($"circuit_breaker.{field} must be between {min} and {max}, not {value}");

    private static TimeSpan Milliseconds(long? value, TimeSpan fallback, string field) => value switch
    {
        null => fallback,
        >= 1 and <= 86_400_000 => TimeSpan.FromMilliseconds(value.Value),
        _ => throw new ModelConfigException($"circuit_breaker.{field} must be between 1 and 86400000 milliseconds, not {value}"),
    };
}
