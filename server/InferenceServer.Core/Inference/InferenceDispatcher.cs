using System.Diagnostics;
using InferenceServer.Repository;

namespace InferenceServer.Inference;

/// <summary>
/// The protocol-free entry point of every inference: finds the model version, validates the request against its
/// configuration, runs it on the backend and records the statistics.
/// </summary>
public sealed class InferenceDispatcher
{
    private readonly ModelRepository _repository;

    /// <summary>Creates a dispatcher over the repository.</summary>
    public InferenceDispatcher(ModelRepository repository)
    {
        ArgumentNullException.ThrowIfNull(repository);
        _repository = repository;
    }

    /// <summary>
    /// Runs one request through the model's scheduler. Errors are <see cref="InferenceException"/>s whose messages are
    /// safe for clients (or <see cref="OperationCanceledException"/> when the client cancelled).
    /// </summary>
    public async Task<InferenceResponse> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        using var lease = _repository.Acquire(request.ModelName, request.ModelVersion);
        Task<InferenceResponse> scheduled;
        try
        {
            var batch = RequestValidator.Validate(request, lease.Config);
            scheduled = lease.Scheduler.ScheduleAsync(request, batch, cancellationToken);
        }
        catch
        {
            lease.Version.Statistics.Fail.Record(Stopwatch.GetTimestamp() - request.ReceivedTimestamp);
            throw;
        }
        try
        {
            return await scheduled.ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException || e is InferenceException { Kind: InferenceErrorKind.DeadlineExceeded })
        {
            // Dropped in the queue: it never reached the engine, so the scheduler did not count it.
            lease.Version.Statistics.Fail.Record(Stopwatch.GetTimestamp() - request.ReceivedTimestamp);
            throw;
        }
    }
}
