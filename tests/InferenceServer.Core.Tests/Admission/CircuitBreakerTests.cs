using InferenceServer.Admission;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Tests.Core.Admission;

/// <summary>The breaker's state machine (Resilience4j's count-based semantics) on a clock the test moves.</summary>
public sealed class CircuitBreakerTests
{
    private readonly ManualTimeProvider _time = new();

    private CircuitBreaker Create(int window = 4, int minimum = 4, double failureRate = 50, double slowRate = 100, int slowMs = 100, int openMs = 10_000, int halfOpen = 2) =>
        new(new CircuitBreakerOptions
        {
            SlidingWindowSize = window,
            MinimumNumberOfCalls = minimum,
            FailureRateThreshold = failureRate,
            SlowCallRateThreshold = slowRate,
            SlowCallDuration = TimeSpan.FromMilliseconds(slowMs),
            OpenDuration = TimeSpan.FromMilliseconds(openMs),
            HalfOpenCalls = halfOpen,
        }, "m", "1", _time, NullLogger.Instance);

    private static CircuitPermit Acquire(CircuitBreaker breaker)
    {
        Assert.True(breaker.TryAcquire(out var permit, out _), $"the breaker refused a call in state {breaker.State}");
        return permit;
    }

    private static void Call(CircuitBreaker breaker, bool fail)
    {
        var permit = Acquire(breaker);
        if (fail)
        {
            breaker.OnFailure(permit);
        }
        else
        {
            breaker.OnSuccess(permit);
        }
    }

    [Fact]
    public void Failures_open_the_breaker_only_once_the_window_holds_the_minimum_number_of_calls()
    {
        var breaker = Create();
        Call(breaker, fail: true);
        Call(breaker, fail: true);
        Call(breaker, fail: true);
        // 100% failures, but only 3 of the 4 calls needed to judge.
        Assert.Equal(CircuitState.Closed, breaker.State);
        Call(breaker, fail: false);
        // 3 of 4 failed: 75% >= 50%.
        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.False(breaker.TryAcquire(out _, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(10), retryAfter);
    }

    [Fact]
    public void The_rates_are_over_the_last_calls_only()
    {
        // Window 4, threshold 75%: F F S S (50%), S (25%), S (0%), F, S, F (50%), F -> F S F F = 75%: open at the tenth call.
        var breaker = Create(window: 4, minimum: 4, failureRate: 75);
        var calls = new[] { true, true, false, false, false, false, true, false, true };
        foreach (var fail in calls)
        {
            Call(breaker, fail);
            Assert.Equal(CircuitState.Closed, breaker.State);
        }
        Call(breaker, fail: true);
        Assert.Equal(CircuitState.Open, breaker.State);
    }

    [Fact]
    public void Old_failures_slide_out_of_the_window()
    {
        // Window 4, threshold 50%: a failure every fourth call never makes two failures among the last four.
        var breaker = Create(window: 4, minimum: 4, failureRate: 50);
        foreach (var fail in new[] { false, false, false, true, false, false, false, true, false, false, false, true })
        {
            Call(breaker, fail);
        }
        Assert.Equal(CircuitState.Closed, breaker.State);
    }

    [Fact]
    public void Slow_calls_open_it_by_the_slow_call_rate()
    {
        var breaker = Create(window: 2, minimum: 2, slowRate: 100, slowMs: 100);
        var fast = Acquire(breaker);
        _time.Advance(TimeSpan.FromMilliseconds(100));
        breaker.OnSuccess(fast);
        // Exactly the threshold is not slow; one fast call of two keeps the slow rate at 50%.
        var slow = Acquire(breaker);
        _time.Advance(TimeSpan.FromMilliseconds(101));
        breaker.OnSuccess(slow);
        Assert.Equal(CircuitState.Closed, breaker.State);
        var slow2 = Acquire(breaker);
        _time.Advance(TimeSpan.FromMilliseconds(500));
        breaker.OnSuccess(slow2);
        Assert.Equal(CircuitState.Open, breaker.State);
    }

    [Fact]
    public void Released_calls_never_count()
    {
        var breaker = Create(window: 2, minimum: 2);
        for (var i = 0; i < 10; i++)
        {
            breaker.Release(Acquire(breaker));
        }
        Call(breaker, fail: false);
        Assert.Equal(CircuitState.Closed, breaker.State);
        Call(breaker, fail: true);
        // The window is S F (50%): only now does it hold two outcomes.
        Assert.Equal(CircuitState.Open, breaker.State);
    }

    [Fact]
    public void After_the_open_duration_the_trial_calls_close_it_when_they_succeed()
    {
        var breaker = Create(window: 2, minimum: 2, halfOpen: 2, openMs: 10_000);
        Call(breaker, fail: true);
        Call(breaker, fail: true);
        Assert.Equal(CircuitState.Open, breaker.State);
        _time.Advance(TimeSpan.FromMilliseconds(9_999));
        Assert.False(breaker.TryAcquire(out _, out var retryAfter));
        Assert.Equal(TimeSpan.FromMilliseconds(1), retryAfter);
        _time.Advance(TimeSpan.FromMilliseconds(1));

        var trial1 = Acquire(breaker);
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
        var trial2 = Acquire(breaker);
        // Two trials are out: a third call waits for their verdict.
        Assert.False(breaker.TryAcquire(out _, out _));
        breaker.OnSuccess(trial1);
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
        breaker.OnSuccess(trial2);
        Assert.Equal(CircuitState.Closed, breaker.State);
        // Closed again with an empty window: one failure does not reopen it.
        Call(breaker, fail: true);
        Assert.Equal(CircuitState.Closed, breaker.State);
    }

    [Fact]
    public void Failing_trial_calls_open_it_again_and_a_released_trial_frees_its_slot()
    {
        var breaker = Create(window: 2, minimum: 2, halfOpen: 2, openMs: 1_000);
        Call(breaker, fail: true);
        Call(breaker, fail: true);
        _time.Advance(TimeSpan.FromSeconds(1));
        var trial1 = Acquire(breaker);
        var trial2 = Acquire(breaker);
        breaker.Release(trial2);
        var trial3 = Acquire(breaker);
        breaker.OnFailure(trial1);
        breaker.OnFailure(trial3);
        Assert.Equal(CircuitState.Open, breaker.State);
        Assert.False(breaker.TryAcquire(out _, out var retryAfter));
        Assert.Equal(TimeSpan.FromSeconds(1), retryAfter);
    }

    [Fact]
    public void An_outcome_from_before_a_transition_does_not_count_after_it()
    {
        var breaker = Create(window: 2, minimum: 2, halfOpen: 1, openMs: 1_000);
        var early = Acquire(breaker);
        Call(breaker, fail: true);
        Call(breaker, fail: true);
        Assert.Equal(CircuitState.Open, breaker.State);
        _time.Advance(TimeSpan.FromSeconds(1));
        var trial = Acquire(breaker);
        // The call permitted while closed fails late: it says nothing about the trial.
        breaker.OnFailure(early);
        Assert.Equal(CircuitState.HalfOpen, breaker.State);
        breaker.OnSuccess(trial);
        Assert.Equal(CircuitState.Closed, breaker.State);
    }

    [Fact]
    public void The_refusal_is_unavailable_with_a_retry_after()
    {
        var breaker = Create();
        var error = breaker.Refuse(TimeSpan.FromMilliseconds(2500));
        Assert.Equal(InferenceErrorKind.Unavailable, error.Kind);
        Assert.Equal("circuit breaker open for model 'm'; retry in 3 s", error.Message);
        Assert.Equal(TimeSpan.FromMilliseconds(2500), error.RetryAfter);
    }

    [Fact]
    public void The_configuration_section_is_read_in_snake_case_and_defaults_apply()
    {
        var file = ModelConfigFile.Parse(
            "circuit_breaker: {failure_rate_threshold: 40, slow_call_rate_threshold: 80, slow_call_duration_ms: 2000, sliding_window_size: 20, " +
            "minimum_number_of_calls: 10, open_duration_ms: 30000, half_open_calls: 3, fallback_model: small}\n");
        var options = CircuitBreakerOptions.Resolve(file.CircuitBreaker, "big")!;
        Assert.Equal(40, options.FailureRateThreshold);
        Assert.Equal(80, options.SlowCallRateThreshold);
        Assert.Equal(TimeSpan.FromSeconds(2), options.SlowCallDuration);
        Assert.Equal(20, options.SlidingWindowSize);
        Assert.Equal(10, options.MinimumNumberOfCalls);
        Assert.Equal(TimeSpan.FromSeconds(30), options.OpenDuration);
        Assert.Equal(3, options.HalfOpenCalls);
        Assert.Equal("small", options.FallbackModel);

        var defaults = CircuitBreakerOptions.Resolve(ModelConfigFile.Parse("circuit_breaker: {sliding_window_size: 20}\n").CircuitBreaker, "big")!;
        Assert.Equal(20, defaults.MinimumNumberOfCalls);
        Assert.Null(defaults.FallbackModel);
        Assert.Null(CircuitBreakerOptions.Resolve(ModelConfigFile.Parse("max_batch_size: 0\n").CircuitBreaker, "big"));
    }

    [Theory]
    [InlineData("failure_rate_threshold: 0", "circuit_breaker.failure_rate_threshold must be a percentage in (0, 100], not 0")]
    [InlineData("slow_call_rate_threshold: 101", "circuit_breaker.slow_call_rate_threshold must be a percentage in (0, 100], not 101")]
    [InlineData("slow_call_duration_ms: 0", "circuit_breaker.slow_call_duration_ms must be between 1 and 86400000 milliseconds, not 0")]
    [InlineData("sliding_window_size: 0", "circuit_breaker.sliding_window_size must be between 1 and 10000, not 0")]
    [InlineData("sliding_window_size: 5, minimum_number_of_calls: 6", "circuit_breaker.minimum_number_of_calls must be between 1 and 5, not 6")]
    [InlineData("open_duration_ms: -1", "circuit_breaker.open_duration_ms must be between 1 and 86400000 milliseconds, not -1")]
    [InlineData("half_open_calls: 0", "circuit_breaker.half_open_calls must be between 1 and 10000, not 0")]
    [InlineData("fallback_model: big", "circuit_breaker.fallback_model must name another model, not the model itself")]
    [InlineData("fallback_model: ../x", "circuit_breaker.fallback_model '../x' is not a valid model name")]
    public void Bad_values_are_rejected_with_the_field_named(string section, string message)
    {
        var file = ModelConfigFile.Parse("circuit_breaker: {" + section + "}\n");
        var error = Assert.Throws<ModelConfigException>(() => CircuitBreakerOptions.Resolve(file.CircuitBreaker, "big"));
        Assert.Equal(message, error.Message);
    }
}
