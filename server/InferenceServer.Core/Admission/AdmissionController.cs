using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Threading.RateLimiting;
using InferenceServer.Inference;
using InferenceServer.Observability;

namespace InferenceServer.Admission;

/// <summary>
/// Decides, before a request reaches its model's scheduler, whether it may: the tenant's token bucket, then the
/// model's, then the model's concurrency limit (waiting in its bounded queue). A rejection is an
/// <see cref="InferenceException"/> of kind <see cref="InferenceErrorKind.ResourceExhausted"/> with
/// <see cref="InferenceException.RetryAfter"/> and <see cref="InferenceException.RateLimit"/>. The limits can be
/// replaced at run time (<see cref="SetDefault"/>, <see cref="SetModel"/>); new requests see the new limiters.
/// </summary>
public sealed class AdmissionController
{
    private readonly ServerMetrics _metrics;
    private readonly ConcurrentDictionary<string, ModelAdmission> _models = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private volatile AdmissionSettings _settings;

    /// <summary>Creates the controller over the configured limits; throws <see cref="ArgumentException"/> on a bad one.</summary>
    public AdmissionController(AdmissionOptions options, ServerMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(metrics);
        options.Validate();
        _metrics = metrics;
        TenantHeader = options.TenantHeader;
        MaxTenants = options.MaxTenants;
        _settings = new AdmissionSettings(options.Default, options.Models.ToImmutableDictionary(StringComparer.Ordinal));
    }

    /// <summary>The header (gRPC metadata key) the adapters read the tenant from.</summary>
    public string TenantHeader { get; }

    /// <summary>Most tenant partitions tracked per model.</summary>
    public int MaxTenants { get; }

    /// <summary>The limits every model gets unless overridden.</summary>
    public AdmissionLimits Default => _settings.Default;

    /// <summary>The per-model overrides.</summary>
    public IReadOnlyDictionary<string, AdmissionLimits> Overrides => _settings.Models;

    /// <summary>The limits in force for <paramref name="model"/>: its override over the default.</summary>
    public AdmissionLimits LimitsOf(string model) => _settings.LimitsOf(model);

    /// <summary>Replaces the default limits; throws <see cref="ArgumentException"/> on a bad value.</summary>
    public void SetDefault(AdmissionLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        limits.Validate("default");
        Update(s => new AdmissionSettings(limits, s.Models));
    }

    /// <summary>Replaces <paramref name="model"/>'s override (null removes it); throws <see cref="ArgumentException"/> on a bad value.</summary>
    public void SetModel(string model, AdmissionLimits? limits)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        limits?.Validate(model);
        Update(s => new AdmissionSettings(s.Default, limits is null ? s.Models.Remove(model) : s.Models.SetItem(model, limits)));
    }

    /// <summary>How many tenant partitions <paramref name="model"/> tracks now (bounded by <see cref="MaxTenants"/>).</summary>
    public int TenantCount(string model) => _models.TryGetValue(model, out var admission) ? admission.TenantCount : 0;

    /// <summary>
    /// Admits a request for <paramref name="model"/> (version label <paramref name="version"/>) from
    /// <paramref name="tenant"/> (null or empty: the shared default bucket). Returns the lease to dispose when the request
    /// finishes, or null when no limit applies; throws a ResourceExhausted <see cref="InferenceException"/> on a rejection.
    /// </summary>
    public ValueTask<IDisposable?> AdmitAsync(string model, string version, string? tenant, CancellationToken cancellationToken) =>
        AdmitAsync(model, version, tenant, generation: false, cancellationToken);

    /// <summary>
    /// As <see cref="AdmitAsync(string, string, string?, CancellationToken)"/>; a <paramref name="generation"/> is also
    /// held to the model's token budget (<see cref="AdmissionLimits.TokensPerMinute"/>), and its lease is then an
    /// <see cref="ITokenMeter"/> to charge its tokens to.
    /// </summary>
    public ValueTask<IDisposable?> AdmitAsync(string model, string version, string? tenant, bool generation, CancellationToken cancellationToken)
    {
        var settings = _settings;
        if (settings.IsEmpty)
        {
            return ValueTask.FromResult<IDisposable?>(null);
        }
        if (!_models.TryGetValue(model, out var admission) || !ReferenceEquals(admission.Settings, settings))
        {
            admission = Rebuild(model);
        }
        return admission.AdmitAsync(tenant, generation, cancellationToken, reason => _metrics.Rejections.WithLabels(model, version, reason).Inc());
    }

    private ModelAdmission Rebuild(string model)
    {
        lock (_gate)
        {
            var settings = _settings;
            if (_models.TryGetValue(model, out var existing) && ReferenceEquals(existing.Settings, settings))
            {
                return existing;
            }
            var admission = new ModelAdmission(settings.LimitsOf(model), MaxTenants, settings);
            _models[model] = admission;
            return admission;
        }
    }

    private void Update(Func<AdmissionSettings, AdmissionSettings> change)
    {
        lock (_gate)
        {
            var settings = change(_settings);
            // Models whose limits did not change keep their buckets; the others get new limiters, atomically per model.
            foreach (var (model, admission) in _models)
            {
                var limits = settings.LimitsOf(model);
                _models[model] = limits == admission.Limits ? admission.WithSettings(settings) : new ModelAdmission(limits, MaxTenants, settings);
            }
            _settings = settings;
        }
    }
}

/// <summary>The limits in force: an immutable snapshot, replaced whole on a change.</summary>
internal sealed class AdmissionSettings(AdmissionLimits defaults, ImmutableDictionary<string, AdmissionLimits> models)
{
    public AdmissionLimits Default { get; } = defaults;

    public ImmutableDictionary<string, AdmissionLimits> Models { get; } = models;

    /// <summary>No limit anywhere: requests skip admission entirely.</summary>
    public bool IsEmpty { get; } = defaults.IsEmpty && models.Values.All(m => m.IsEmpty);

    public AdmissionLimits LimitsOf(string model) => Models.TryGetValue(model, out var limits) ? limits.Over(Default) : Default;
}

/// <summary>One model's limiters, built from its limits; replaced (not changed) when the limits change.</summary>
internal sealed class ModelAdmission
{
    private static readonly TimeSpan ConcurrencyRetryAfter = TimeSpan.FromSeconds(1);
    private readonly TokenBucket? _bucket;
    private readonly TenantBuckets? _tenants;
    private readonly ConcurrencyLimiter? _concurrency;
    private readonly TokenBudget? _tokens;
    private readonly int _permits;

    public ModelAdmission(AdmissionLimits limits, int maxTenants, AdmissionSettings settings)
    {
        Limits = limits;
        Settings = settings;
        if (limits.TokensPerMinute is { } perMinute)
        {
            _tokens = new TokenBudget(perMinute, limits.TokenBurst ?? (long)Math.Max(1, Math.Ceiling(perMinute)));
        }
        if (limits.RequestsPerSecond is { } rate)
        {
            _bucket = new TokenBucket(rate, AdmissionLimits.BurstOf(rate, limits.Burst));
        }
        if (limits.TenantRequestsPerSecond is { } tenantRate)
        {
            _tenants = new TenantBuckets(tenantRate, AdmissionLimits.BurstOf(tenantRate, limits.TenantBurst), maxTenants);
        }
        if (limits.MaxConcurrency is { } permits)
        {
            _permits = permits;
            _concurrency = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
            {
                PermitLimit = permits,
                QueueLimit = limits.QueueLength ?? 0,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            });
        }
    }

    private ModelAdmission(ModelAdmission other, AdmissionSettings settings)
    {
        Limits = other.Limits;
        Settings = settings;
        _bucket = other._bucket;
        _tenants = other._tenants;
        _concurrency = other._concurrency;
        _tokens = other._tokens;
        _permits = other._permits;
    }

    public AdmissionLimits Limits { get; }

    /// <summary>The settings snapshot this admission is current for.</summary>
    public AdmissionSettings Settings { get; }

    public int TenantCount => _tenants?.Count ?? 0;

    public ModelAdmission WithSettings(AdmissionSettings settings) => new(this, settings);

    public ValueTask<IDisposable?> AdmitAsync(string? tenant, bool generation, CancellationToken cancellationToken, Action<string> rejected)
    {
        // A generation first needs token budget left; a rejected one takes no request token.
        var tokens = generation ? _tokens : null;
        tokens?.Check(rejected);
        if (_tenants is not null)
        {
            _tenants.For(tenant).Take(rejected, "tenant");
        }
        _bucket?.Take(rejected, "model");
        if (_concurrency is null)
        {
            return ValueTask.FromResult(Metered(null, tokens));
        }
        var lease = _concurrency.AttemptAcquire(1);
        return lease.IsAcquired ? ValueTask.FromResult(Metered(lease, tokens)) : WaitAsync(lease, tokens, cancellationToken, rejected);
    }

    /// <summary>A generation's lease, through which its tokens are charged to the budget; <paramref name="lease"/> itself otherwise.</summary>
    private static IDisposable? Metered(IDisposable? lease, TokenBudget? tokens) => tokens is null ? lease : new MeteredLease(lease, tokens);

    private async ValueTask<IDisposable?> WaitAsync(RateLimitLease failed, TokenBudget? tokens, CancellationToken cancellationToken, Action<string> rejected)
    {
        failed.Dispose();
        // Queued behind the running requests; the limiter fails at once when its queue is full.
        var lease = await _concurrency!.AcquireAsync(1, cancellationToken).ConfigureAwait(false);
        if (lease.IsAcquired)
        {
            return Metered(lease, tokens);
        }
        lease.Dispose();
        rejected(RequestMetrics.Concurrency);
        throw new InferenceException(InferenceErrorKind.ResourceExhausted,
            $"concurrency limit reached: {_permits} requests running and the wait queue is full")
        {
            RetryAfter = ConcurrencyRetryAfter,
            RateLimit = new RateLimitInfo(_permits, 0, (long)ConcurrencyRetryAfter.TotalSeconds),
        };
    }
}

/// <summary>What a generation's admission lease charges its tokens to (<see cref="AdmissionLimits.TokensPerMinute"/>).</summary>
public interface ITokenMeter
{
    /// <summary>Charges <paramref name="tokens"/> (prompt or generated) to the model's token budget.</summary>
    void Charge(long tokens);
}

/// <summary>A generation's admission: its concurrency permit (if any) and its model's token budget.</summary>
internal sealed class MeteredLease(IDisposable? lease, TokenBudget tokens) : IDisposable, ITokenMeter
{
    public void Charge(long count) => tokens.Charge(count);

    public void Dispose() => lease?.Dispose();
}

/// <summary>
/// A model's token budget for text generation, in prompt and generated tokens per minute: refilled lazily by the time
/// elapsed, up to its capacity; charged after the fact (a generation's length is not known when it starts), so it may
/// go below zero. A generation is admitted while it is above zero; otherwise 429 with the time until it is.
/// </summary>
internal sealed class TokenBudget(double perMinute, long capacity)
{
    private readonly Lock _gate = new();
    private double _balance = capacity;
    private long _stamp = System.Diagnostics.Stopwatch.GetTimestamp();

    /// <summary>Admits a generation while there is budget left, or throws the rate-limit rejection (429, Retry-After).</summary>
    public void Check(Action<string> rejected)
    {
        double balance;
        lock (_gate)
        {
            Refill();
            balance = _balance;
        }
        if (balance >= 1)
        {
            return;
        }
        var seconds = Math.Max(1, (long)Math.Ceiling((1 - balance) * 60 / perMinute));
        rejected(RequestMetrics.RateLimit);
        throw new InferenceException(InferenceErrorKind.ResourceExhausted,
            $"token rate limit exceeded: {perMinute.ToString(System.Globalization.CultureInfo.InvariantCulture)} prompt and generated tokens per minute (budget {capacity}); {Math.Floor(balance).ToString(System.Globalization.CultureInfo.InvariantCulture)} left")
        {
            RetryAfter = TimeSpan.FromSeconds(seconds),
            RateLimit = new RateLimitInfo(capacity, 0, seconds),
        };
    }

    /// <summary>Charges <paramref name="tokens"/>.</summary>
    public void Charge(long tokens)
    {
        lock (_gate)
        {
            Refill();
            _balance -= tokens;
        }
    }

    private void Refill()
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        _balance = Math.Min(capacity, _balance + ((now - _stamp) / (double)System.Diagnostics.Stopwatch.Frequency * perMinute / 60));
        _stamp = now;
    }
}

/// <summary>A token bucket over <see cref="TokenBucketRateLimiter"/>, replenished lazily on each take (no timer per bucket).</summary>
internal sealed class TokenBucket
{
    private readonly TokenBucketRateLimiter _limiter;
    private readonly double _rate;
    private readonly int _burst;

    public TokenBucket(double rate, int burst)
    {
        _rate = rate;
        _burst = burst;
        // One token per period of 1/rate: the limiter adds tokens in proportion to the time elapsed when replenished.
        _limiter = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = 1,
            ReplenishmentPeriod = TimeSpan.FromTicks(Math.Max(1, (long)(TimeSpan.TicksPerSecond / rate))),
            AutoReplenishment = false,
            QueueLimit = 0,
        });
    }

    /// <summary>Takes one token or throws the rate-limit rejection (<paramref name="scope"/>: "model" or "tenant").</summary>
    public void Take(Action<string> rejected, string scope)
    {
        _limiter.TryReplenish();
        using var lease = _limiter.AttemptAcquire(1);
        if (lease.IsAcquired)
        {
            return;
        }
        var retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var hint) && hint > TimeSpan.Zero ? hint : TimeSpan.FromSeconds(1 / _rate);
        var seconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds));
        rejected(RequestMetrics.RateLimit);
        throw new InferenceException(InferenceErrorKind.ResourceExhausted,
            $"{scope} rate limit exceeded: {_rate.ToString(System.Globalization.CultureInfo.InvariantCulture)} requests per second, burst {_burst}")
        {
            RetryAfter = TimeSpan.FromSeconds(seconds),
            RateLimit = new RateLimitInfo(_burst, Math.Max(0, _limiter.GetStatistics()?.CurrentAvailablePermits ?? 0), seconds),
        };
    }
}

/// <summary>
/// The tenants' token buckets of one model: at most <c>maxTenants</c> partitions, least recently used evicted first,
/// so made-up tenant values cannot grow memory without bound. No tenant shares one default bucket, never evicted.
/// </summary>
internal sealed class TenantBuckets(double rate, int burst, int maxTenants)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, LinkedListNode<(string Tenant, TokenBucket Bucket)>> _byTenant = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Tenant, TokenBucket Bucket)> _recency = new();
    private readonly TokenBucket _shared = new(rate, burst);

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _byTenant.Count;
            }
        }
    }

    public TokenBucket For(string? tenant)
    {
        if (string.IsNullOrEmpty(tenant))
        {
            return _shared;
        }
        lock (_gate)
        {
            if (_byTenant.TryGetValue(tenant, out var node))
            {
                _recency.Remove(node);
                _recency.AddFirst(node);
                return node.Value.Bucket;
            }
            if (_byTenant.Count >= maxTenants)
            {
                // An evicted bucket needs no disposal (no timer, no queue); a request still holding it just uses it.
                var last = _recency.Last!;
                _recency.RemoveLast();
                _byTenant.Remove(last.Value.Tenant);
            }
            var bucket = new TokenBucket(rate, burst);
            _byTenant[tenant] = _recency.AddFirst((tenant, bucket));
            return bucket;
        }
    }
}
