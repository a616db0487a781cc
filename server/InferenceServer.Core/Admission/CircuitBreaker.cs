using System.Globalization;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Admission;

/// <summary>The state of a <see cref="CircuitBreaker"/>.</summary>
public enum CircuitState
{
    /// <summary>Calls go through; their outcomes fill the sliding window.</summary>
    Closed,
    /// <summary>Calls are refused (or go to the fallback model) until the open duration has passed.</summary>
    Open,
    /// <summary>A few trial calls go through; their outcomes close the breaker or open it again.</summary>
    HalfOpen,
}

/// <summary>
/// A count-based circuit breaker with Resilience4j's semantics: the outcomes (failed, slow) of the last
/// <see cref="CircuitBreakerOptions.SlidingWindowSize"/> calls; once the window holds
/// <see cref="CircuitBreakerOptions.MinimumNumberOfCalls"/>, a failure rate or slow-call rate at or above its threshold
/// opens the breaker for <see cref="CircuitBreakerOptions.OpenDuration"/>; then <see cref="CircuitBreakerOptions.HalfOpenCalls"/>
/// trial calls decide, by the same thresholds, between closing and opening again. Calls that end for reasons that say
/// nothing about the model's health (bad input, cancellation, a full queue) are released without an outcome.
/// One small lock over a ring of outcome bytes: nothing is allocated per call.
/// </summary>
public sealed partial class CircuitBreaker
{
    private const byte FailedBit = 1;
    private const byte SlowBit = 2;

    private readonly Lock _lock = new();
    private readonly byte[] _ring;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Observability.CircuitBreakerMetrics? _metrics;
    private CircuitState _state = CircuitState.Closed;
    // Bumped at each transition: an outcome of a call permitted in an earlier state is not counted in the new one.
    private long _epoch;
    private int _next;
    private int _count;
    private int _failed;
    private int _slow;
    private long _openUntil;
    private int _trialsIssued;

    /// <summary>Creates a closed breaker for a model version.</summary>
    public CircuitBreaker(CircuitBreakerOptions options, string model, string version, TimeProvider time, ILogger logger, Observability.CircuitBreakerMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(logger);
        Options = options;
        Model = model;
        Version = version;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _ring = new byte[options.SlidingWindowSize];
    }

    /// <summary>The settings.</summary>
    public CircuitBreakerOptions Options { get; }

    /// <summary>The model the breaker guards.</summary>
    public string Model { get; }

    /// <summary>The version the breaker guards.</summary>
    public string Version { get; }

    /// <summary>The current state (an open breaker whose duration has passed turns half-open at the next call).</summary>
    public CircuitState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>
    /// Asks to let a call through. True with a permit to hand back to <see cref="OnSuccess"/>, <see cref="OnFailure"/>
    /// or <see cref="Release"/>; false while open (or half-open with every trial taken), with when to retry.
    /// </summary>
    public bool TryAcquire(out CircuitPermit permit, out TimeSpan retryAfter)
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (_state == CircuitState.Open && now >= _openUntil)
            {
                TransitionLocked(CircuitState.HalfOpen, "open duration passed");
            }
            switch (_state)
            {
                case CircuitState.Closed:
                    permit = new CircuitPermit(_epoch, now, Granted: true);
                    retryAfter = TimeSpan.Zero;
                    return true;
                case CircuitState.HalfOpen when _trialsIssued < Options.HalfOpenCalls:
                    _trialsIssued++;
                    permit = new CircuitPermit(_epoch, now, Granted: true);
                    retryAfter = TimeSpan.Zero;
                    return true;
                case CircuitState.HalfOpen:
                    // The trials are running; their outcome is the earliest news.
                    permit = default;
                    retryAfter = TimeSpan.FromSeconds(1);
                    return false;
                default:
                    permit = default;
                    retryAfter = _time.GetElapsedTime(now, _openUntil);
                    return false;
            }
        }
    }

    /// <summary>The permitted call succeeded (slow if it took longer than the slow-call duration).</summary>
    public void OnSuccess(CircuitPermit permit) => Record(permit, failed: false, Elapsed(permit));

    /// <summary>The permitted call failed in the engine.</summary>
    public void OnFailure(CircuitPermit permit) => Record(permit, failed: true, Elapsed(permit));

    /// <summary>
    /// The permitted call ended, failed in the engine or not, and <paramref name="duration"/> is what is judged against
    /// the slow-call duration: for a generation, its time to first token (or to its failure before one).
    /// </summary>
    public void OnOutcome(CircuitPermit permit, bool failed, TimeSpan duration) => Record(permit, failed, duration);

    /// <summary>Time since <paramref name="permit"/> was granted, on the breaker's clock.</summary>
    public TimeSpan Elapsed(CircuitPermit permit) => _time.GetElapsedTime(permit.Started);

    /// <summary>The permitted call ended without an outcome that counts (bad input, cancellation, full queue, deadline).</summary>
    public void Release(CircuitPermit permit)
    {
        if (!permit.Granted)
        {
            return;
        }
        lock (_lock)
        {
            if (permit.Epoch == _epoch && _state == CircuitState.HalfOpen)
            {
                _trialsIssued--;
            }
        }
    }

    /// <summary>Counts a request the fallback model served while the breaker was open.</summary>
    public void FallbackServed() => _metrics?.FallbackServed?.Inc();

    /// <summary>Counts a call refused while the breaker is open and no fallback serves it; returns its error: 503 / UNAVAILABLE.</summary>
    public InferenceException Refuse(TimeSpan retryAfter)
    {
        _metrics?.Rejected.Inc();
        return OpenError(retryAfter);
    }

    /// <summary>Counts a call the breaker refused whose fallback model could not serve it either; returns its error: 503 / UNAVAILABLE.</summary>
    public InferenceException FallbackFailed(string fallback, InferenceException error, TimeSpan retryAfter)
    {
        _metrics?.Rejected.Inc();
        return new InferenceException(InferenceErrorKind.Unavailable,
            $"circuit breaker open for model '{Model}' and its fallback model '{fallback}' cannot serve the request: {error.Message}", error)
        {
            RetryAfter = retryAfter < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : retryAfter,
        };
    }

    /// <summary>The error of a call refused while the breaker is open (with when to retry).</summary>
    public InferenceException OpenError(TimeSpan retryAfter) =>
        new(InferenceErrorKind.Unavailable,
            $"circuit breaker open for model '{Model}'; retry in {Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture)} s")
        {
            RetryAfter = retryAfter < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : retryAfter,
        };

    private void Record(CircuitPermit permit, bool failed, TimeSpan elapsed)
    {
        if (!permit.Granted)
        {
            return;
        }
        var outcome = (byte)((failed ? FailedBit : 0) | (elapsed > Options.SlowCallDuration ? SlowBit : 0));
        lock (_lock)
        {
            if (permit.Epoch != _epoch || _state == CircuitState.Open)
            {
                return;
            }
            Add(outcome);
            if (_state == CircuitState.Closed)
            {
                if (_count >= Options.MinimumNumberOfCalls && Exceeded(out var reason))
                {
                    Open(reason);
                }
            }
            else if (_count >= Options.HalfOpenCalls)
            {
                if (Exceeded(out var reason))
                {
                    Open("trial calls: " + reason);
                }
                else
                {
                    TransitionLocked(CircuitState.Closed, $"{_count} trial call(s) succeeded: failure rate {Rate(_failed):0.#}%, slow-call rate {Rate(_slow):0.#}%");
                }
            }
        }
    }

    private void Add(byte outcome)
    {
        if (_count == _ring.Length)
        {
            var evicted = _ring[_next];
            _failed -= evicted & FailedBit;
            _slow -= (evicted & SlowBit) >> 1;
        }
        else
        {
            _count++;
        }
        _ring[_next] = outcome;
        _failed += outcome & FailedBit;
        _slow += (outcome & SlowBit) >> 1;
        _next = (_next + 1) % _ring.Length;
    }

    private double Rate(int n) => _count == 0 ? 0 : 100.0 * n / _count;

    private bool Exceeded(out string reason)
    {
        var failureRate = Rate(_failed);
        var slowRate = Rate(_slow);
        if (failureRate >= Options.FailureRateThreshold)
        {
            reason = $"failure rate {failureRate:0.#}% over {_count} call(s) (threshold {Options.FailureRateThreshold:0.#}%)";
            return true;
        }
        if (slowRate >= Options.SlowCallRateThreshold)
        {
            reason = $"slow-call rate {slowRate:0.#}% over {_count} call(s) slower than {Options.SlowCallDuration.TotalMilliseconds:0} ms (threshold {Options.SlowCallRateThreshold:0.#}%)";
            return true;
        }
        reason = "";
        return false;
    }

    private void Open(string reason)
    {
        _openUntil = _time.GetTimestamp() + (long)(Options.OpenDuration.TotalSeconds * _time.TimestampFrequency);
        TransitionLocked(CircuitState.Open, reason);
    }

    private void TransitionLocked(CircuitState to, string reason)
    {
        var from = _state;
        _state = to;
        _epoch++;
        _count = 0;
        _next = 0;
        _failed = 0;
        _slow = 0;
        _trialsIssued = 0;
        if (to == CircuitState.Open)
        {
            Log.Opened(_logger, Model, Version, Name(from), reason, Options.OpenDuration.TotalSeconds, Options.FallbackModel ?? "none");
        }
        else
        {
            Log.Transition(_logger, Model, Version, Name(from), Name(to), reason);
        }
    }

    /// <summary>The state's name in metrics and logs (CLOSED, OPEN, HALF_OPEN).</summary>
    public static string Name(CircuitState state) => state switch
    {
        CircuitState.Open => "OPEN",
        CircuitState.HalfOpen => "HALF_OPEN",
        _ => "CLOSED",
    };

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Circuit breaker of model '{Model}' version {Version}: {From} -> OPEN for {Seconds} s ({Reason}); fallback model: {Fallback}")]
        public static partial void Opened(ILogger logger, string model, string version, string from, string reason, double seconds, string fallback);

        [LoggerMessage(2, LogLevel.Information, "Circuit breaker of model '{Model}' version {Version}: {From} -> {To} ({Reason})")]
        public static partial void Transition(ILogger logger, string model, string version, string from, string to, string reason);
    }
}

/// <summary>A call's permission from a <see cref="CircuitBreaker"/>: the state it was granted in and when the call started.</summary>
public readonly record struct CircuitPermit(long Epoch, long Started, bool Granted);
