using InferenceServer.Admission;
using InferenceServer.Inference;
using InferenceServer.Observability;

namespace InferenceServer.Tests.Core.Admission;

/// <summary>The admission controller without a server: bucket arithmetic, the tenant bound, concurrency and run-time changes.</summary>
public sealed class AdmissionControllerTests
{
    private const double Hourly = 1.0 / 3600;

    [Fact]
    public async Task Without_limits_nothing_is_created_and_every_request_is_admitted()
    {
        var admission = new AdmissionController(new AdmissionOptions(), new ServerMetrics());
        for (var i = 0; i < 100; i++)
        {
            Assert.Null(await admission.AdmitAsync("m", "1", $"t{i}", CancellationToken.None));
        }
        Assert.Equal(0, admission.TenantCount("m"));
    }

    [Fact]
    public async Task A_bucket_admits_its_burst_then_rejects_with_the_limit_and_a_retry_hint()
    {
        var admission = Controller(new AdmissionLimits { RequestsPerSecond = Hourly, Burst = 3 });
        for (var i = 0; i < 3; i++)
        {
            await admission.AdmitAsync("m", "1", null, CancellationToken.None);
        }
        var error = await Assert.ThrowsAsync<InferenceException>(() => admission.AdmitAsync("m", "1", null, CancellationToken.None).AsTask());
        Assert.Equal(InferenceErrorKind.ResourceExhausted, error.Kind);
        Assert.Equal(new RateLimitInfo(3, 0, error.RateLimit!.ResetSeconds), error.RateLimit);
        Assert.InRange(error.RetryAfter!.Value.TotalSeconds, 1, 3601);
        Assert.Equal((long)error.RetryAfter.Value.TotalSeconds, error.RateLimit.ResetSeconds);
        // Another model has its own bucket.
        await admission.AdmitAsync("other", "1", null, CancellationToken.None);
    }

    [Fact]
    public async Task Tenant_partitions_are_bounded_and_the_least_recently_used_is_evicted()
    {
        var admission = new AdmissionController(
            new AdmissionOptions { MaxTenants = 3, Default = new AdmissionLimits { TenantRequestsPerSecond = Hourly, TenantBurst = 1 } }, new ServerMetrics());
        await admission.AdmitAsync("m", "1", "a", CancellationToken.None);
        await admission.AdmitAsync("m", "1", "b", CancellationToken.None);
        await admission.AdmitAsync("m", "1", "c", CancellationToken.None);
        // "a" is used again (and rejected), so "b" is now the least recently used.
        await Assert.ThrowsAsync<InferenceException>(() => admission.AdmitAsync("m", "1", "a", CancellationToken.None).AsTask());
        await admission.AdmitAsync("m", "1", "d", CancellationToken.None);
        Assert.Equal(3, admission.TenantCount("m"));
        await admission.AdmitAsync("m", "1", "b", CancellationToken.None);
        await Assert.ThrowsAsync<InferenceException>(() => admission.AdmitAsync("m", "1", "d", CancellationToken.None).AsTask());
        for (var i = 0; i < 5000; i++)
        {
            await admission.AdmitAsync("m", "1", $"flood-{i}", CancellationToken.None);
        }
        Assert.Equal(3, admission.TenantCount("m"));
    }

    [Fact]
    public async Task Concurrency_permits_queue_then_reject_and_a_released_permit_admits_the_oldest_waiter()
    {
        var admission = Controller(new AdmissionLimits { MaxConcurrency = 1, QueueLength = 1 });
        var first = await admission.AdmitAsync("m", "1", null, CancellationToken.None);
        Assert.NotNull(first);
        var waiting = admission.AdmitAsync("m", "1", null, CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);
        var error = await Assert.ThrowsAsync<InferenceException>(() => admission.AdmitAsync("m", "1", null, CancellationToken.None).AsTask());
        Assert.Equal(new RateLimitInfo(1, 0, 1), error.RateLimit);
        first!.Dispose();
        using var second = await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotNull(second);
    }

    [Fact]
    public async Task A_run_time_change_replaces_only_the_changed_models_limiters()
    {
        var admission = Controller(new AdmissionLimits { RequestsPerSecond = Hourly, Burst = 1 });
        await admission.AdmitAsync("m", "1", null, CancellationToken.None);
        await admission.AdmitAsync("n", "1", null, CancellationToken.None);
        await Assert.ThrowsAsync<InferenceException>(() => admission.AdmitAsync("m", "1", null, CancellationToken.None).AsTask());

        admission.SetModel("m", new AdmissionLimits { RequestsPerSecond = Hourly, Burst = 2 });
        Assert.Equal(2, admission.LimitsOf("m").Burst);
        await admission.AdmitAsync("m", "1", null, CancellationToken.None);
        await admission.AdmitAsync("m", "1", null, CancellationToken.None);
        await Assert.ThrowsAsync<InferenceException>(() => admission.AdmitAsync("m", "1", null, CancellationToken.None).AsTask());
        // "n" kept its (empty) bucket.
        await Assert.ThrowsAsync<InferenceException>(() => admission.AdmitAsync("n", "1", null, CancellationToken.None).AsTask());
        Assert.Throws<ArgumentException>(() => admission.SetModel("m", new AdmissionLimits { Burst = 0 }));
        Assert.Equal(2, admission.LimitsOf("m").Burst);
    }

    private static AdmissionController Controller(AdmissionLimits defaults) =>
        new(new AdmissionOptions { Default = defaults }, new ServerMetrics());
}
