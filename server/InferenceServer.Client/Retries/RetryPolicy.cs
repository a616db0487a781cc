namespace InferenceServer.Client;

/// <summary>
/// When and how a client retries a failed call. Only overload (429 / RESOURCE_EXHAUSTED), unavailability
/// (503 / UNAVAILABLE) and failed connections are retried; never 4xx, 500 or 504. The default is capped low (2 retries):
/// a mesh retries too, and retries multiply. A wait the server asks for (<c>Retry-After</c>,
/// <c>grpc-retry-pushback-ms</c>) replaces the backoff; one longer than <see cref="MaxRetryAfter"/>, or one that would end
/// past the call's deadline, ends the retries and the call fails with the server's error.
/// </summary>
public sealed record RetryPolicy
{
    /// <summary>2 retries, backoff from 100 ms doubling to at most 2 s with ±50% jitter, server waits up to 10 s.</summary>
    public static RetryPolicy Default { get; } = new();

    /// <summary>No retries.</summary>
    public static RetryPolicy None { get; } = new() { MaxRetries = 0 };

    /// <summary>Retries after the first attempt (so at most MaxRetries + 1 attempts).</summary>
    public int MaxRetries { get; init; } = 2;

    /// <summary>The backoff before the first retry; doubled for each further retry.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The largest backoff.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The jitter, as a fraction of the backoff (0.5: the wait is between 50% and 150% of it).</summary>
    public double Jitter { get; init; } = 0.5;

    /// <summary>The longest server-requested wait the client honours; past it the call gives up at once.</summary>
    public TimeSpan MaxRetryAfter { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Whether a failure of this kind is retried.</summary>
    public static bool IsRetryable(InferenceServerException exception) => exception is RateLimitedException or UnavailableException;

    internal TimeSpan Backoff(int retry, Random random)
    {
        var baseMs = Math.Min(MaxBackoff.TotalMilliseconds, InitialBackoff.TotalMilliseconds * Math.Pow(2, retry));
        var factor = 1 + Jitter * (2 * random.NextDouble() - 1);
        return TimeSpan.FromMilliseconds(Math.Max(0, baseMs * factor));
    }
}
