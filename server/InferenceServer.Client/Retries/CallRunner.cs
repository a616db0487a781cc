namespace InferenceServer.Client;

/// <summary>Runs one call of a client: its deadline, its retries and their waits.</summary>
internal sealed class CallRunner(InferenceClientOptions options)
{
    private readonly Random _random = options.Random ?? Random.Shared;

    public TimeProvider Time => options.TimeProvider;

    /// <summary>
    /// Runs <paramref name="attempt"/> (given the deadline, or null, and a token cancelled at it) until it succeeds, fails
    /// with an error that is not retried, or the retries run out.
    /// </summary>
    public async Task<T> RunAsync<T>(CallSettings? settings, Func<DateTimeOffset?, CancellationToken, Task<T>> attempt, CancellationToken cancellationToken)
    {
        var timeout = settings?.Timeout ?? options.DefaultTimeout;
        var deadline = timeout is { } t ? Time.GetUtcNow() + t : (DateTimeOffset?)null;
        using var deadlineSource = timeout is { } d ? new CancellationTokenSource(d, Time) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadlineSource.Token);
        var policy = options.Retry;
        for (var retry = 0; ; retry++)
        {
            try
            {
                return await attempt(deadline, linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException e) when (deadlineSource.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DeadlineExceededException($"the call's deadline of {timeout!.Value.TotalMilliseconds:0} ms passed", null, null, e);
            }
            catch (InferenceServerException e) when (RetryPolicy.IsRetryable(e) && retry < policy.MaxRetries)
            {
                var wait = e.RetryAfter ?? policy.Backoff(retry, _random);
                if (e.RetryAfter > policy.MaxRetryAfter)
                {
                    throw;
                }
                if (deadline is { } end && Time.GetUtcNow() + wait >= end)
                {
                    throw;
                }
                try
                {
                    await Task.Delay(wait, Time, linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (deadlineSource.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
                }
            }
        }
    }
}
