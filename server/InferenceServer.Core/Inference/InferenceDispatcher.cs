using System.Diagnostics;
using InferenceServer.Backends;
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

    /// <summary>Runs one request. Errors are <see cref="InferenceException"/>s whose messages are safe for clients.</summary>
    public ValueTask<InferenceResponse> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        using var lease = _repository.Acquire(request.ModelName, request.ModelVersion);
        var statistics = lease.Version.Statistics;
        var config = lease.Config;
        var version = lease.Version.Version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var response = new InferenceResponse(config.Name, version, request.Id);
        try
        {
            var batch = RequestValidator.Validate(request, config);
            IReadOnlyList<string> outputs = request.RequestedOutputs.Count > 0 ? request.RequestedOutputs : config.OutputNames;
            var started = Stopwatch.GetTimestamp();
            statistics.Queue.Record(started - request.ReceivedTimestamp);
            var timings = new ExecutionTimings();
            lease.Model.Execute(request, outputs, response, ref timings);
            statistics.RecordExecution(batch, timings.InputTicks, timings.InferTicks, timings.OutputTicks);
            statistics.Success.Record(Stopwatch.GetTimestamp() - request.ReceivedTimestamp);
            return ValueTask.FromResult(response);
        }
        catch
        {
            statistics.Fail.Record(Stopwatch.GetTimestamp() - request.ReceivedTimestamp);
            response.Dispose();
            throw;
        }
    }
}
