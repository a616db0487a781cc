namespace InferenceServer.Admission;

/// <summary>
/// Admission control (configuration section <c>Admission</c>): token-bucket rate limits per model and per tenant and a
/// concurrency limit with a bounded wait queue per model. The limits on this object apply to every model; the entries
/// of <see cref="Models"/> override them field by field. With no limit set anywhere there is no limiter at all.
/// </summary>
public sealed class AdmissionOptions
{
    /// <summary>The request header (gRPC metadata key) naming the tenant; the mesh sets it from a verified identity.</summary>
    public string TenantHeader { get; set; } = "x-tenant-id";

    /// <summary>Most tenant partitions tracked per model; beyond it the least recently used one is evicted.</summary>
    public int MaxTenants { get; set; } = 1000;

    /// <summary>The limits every model gets unless <see cref="Models"/> overrides them.</summary>
    public AdmissionLimits Default { get; set; } = new();

    /// <summary>Per-model overrides (<c>Admission:Models:NAME:RequestsPerSecond</c>); an unset field falls back to <see cref="Default"/>.</summary>
    public Dictionary<string, AdmissionLimits> Models { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad value.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(TenantHeader))
        {
            throw new ArgumentException("Admission:TenantHeader must not be empty");
        }
        if (MaxTenants < 1)
        {
            throw new ArgumentException($"Admission:MaxTenants must be at least 1, not {MaxTenants}");
        }
        Default.Validate("Admission:Default");
        foreach (var (model, limits) in Models)
        {
            limits.Validate($"Admission:Models:{model}");
        }
    }
}

/// <summary>
/// The limits of one model. Every field is optional: null means "no such limit" (or, in a per-model override, "as the
/// default"). A rate without a burst gets a burst of one second's worth (at least 1); a concurrency limit without a
/// queue length gets no queue.
/// </summary>
public sealed record AdmissionLimits
{
    /// <summary>The model's token bucket: tokens added per second (may be fractional, e.g. 0.5).</summary>
    public double? RequestsPerSecond { get; init; }

    /// <summary>The model bucket's capacity: the largest burst admitted at once.</summary>
    public int? Burst { get; init; }

    /// <summary>Each tenant's token bucket on this model: tokens per second.</summary>
    public double? TenantRequestsPerSecond { get; init; }

    /// <summary>Each tenant bucket's capacity.</summary>
    public int? TenantBurst { get; init; }

    /// <summary>Most requests of this model running (in the scheduler or streaming) at once.</summary>
    public int? MaxConcurrency { get; init; }

    /// <summary>Most requests waiting for a concurrency permit; more are rejected at once.</summary>
    public int? QueueLength { get; init; }

    /// <summary>
    /// Text generation's token budget on this model, as LLM gateways meter it: prompt and generated tokens per minute.
    /// A generation is admitted while the budget is above zero; its prompt is charged when it starts and its generated
    /// tokens when it ends, so the budget may go below zero, and then waits until it refills. Tensor inference is not charged.
    /// </summary>
    public double? TokensPerMinute { get; init; }

    /// <summary>The token budget's capacity (default: one minute's worth).</summary>
    public long? TokenBurst { get; init; }

    /// <summary>True when no limit is set.</summary>
    public bool IsEmpty => RequestsPerSecond is null && TenantRequestsPerSecond is null && MaxConcurrency is null && TokensPerMinute is null;

    /// <summary>These limits with each unset field taken from <paramref name="fallback"/>.</summary>
    public AdmissionLimits Over(AdmissionLimits fallback) => new()
    {
        RequestsPerSecond = RequestsPerSecond ?? fallback.RequestsPerSecond,
        Burst = Burst ?? fallback.Burst,
        TenantRequestsPerSecond = TenantRequestsPerSecond ?? fallback.TenantRequestsPerSecond,
        TenantBurst = TenantBurst ?? fallback.TenantBurst,
        MaxConcurrency = MaxConcurrency ?? fallback.MaxConcurrency,
        QueueLength = QueueLength ?? fallback.QueueLength,
        TokensPerMinute = TokensPerMinute ?? fallback.TokensPerMinute,
        TokenBurst = TokenBurst ?? fallback.TokenBurst,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad value, prefixed by <paramref name="where"/>.</summary>
    public void Validate(string where)
    {
        if (RequestsPerSecond is { } rate && !(rate > 0 && double.IsFinite(rate)))
        {
            throw new ArgumentException($"{where}: RequestsPerSecond must be a positive number, not {rate}");
        }
        if (TenantRequestsPerSecond is { } tenantRate && !(tenantRate > 0 && double.IsFinite(tenantRate)))
        {
            throw new ArgumentException($"{where}: TenantRequestsPerSecond must be a positive number, not {tenantRate}");
        }
        if (Burst is < 1)
        {
            throw new ArgumentException($"{where}: Burst must be at least 1, not {Burst}");
        }
        if (TenantBurst is < 1)
        {
            throw new ArgumentException($"{where}: TenantBurst must be at least 1, not {TenantBurst}");
        }
        if (MaxConcurrency is < 1)
        {
            throw new ArgumentException($"{where}: MaxConcurrency must be at least 1, not {MaxConcurrency}");
        }
        if (TokensPerMinute is { } tokens && !(tokens > 0 && double.IsFinite(tokens)))
        {
            throw new ArgumentException($"{where}: TokensPerMinute must be a positive number, not {tokens}");
        }
        if (TokenBurst is < 1)
        {
            throw new ArgumentException($"{where}: TokenBurst must be at least 1, not {TokenBurst}");
        }
        if (QueueLength is < 0)
        {
            throw new ArgumentException($"{where}: QueueLength must be 0 or more, not {QueueLength}");
        }
    }

    internal static int BurstOf(double rate, int? burst) => burst ?? (int)Math.Max(1, Math.Ceiling(rate));
}
