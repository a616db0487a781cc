using System.Diagnostics;
using System.Globalization;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Observability;
using InferenceServer.Repository;
using InferenceServer.Statistics;
using InferenceServer.Tensors;

namespace InferenceServer.Scheduling;

/// <summary>
/// The scheduler of one model version: a bounded priority queue in front of the model's engine instances. Each
/// instance has a dedicated thread that takes the next batch (dynamic batching) or the next request, runs it and
/// answers every request in it. Models without a batch dimension run one request at a time per instance.
/// </summary>
internal sealed class ModelScheduler : IModelRunner
{
    private readonly ModelConfig _config;
    private readonly string _version;
    private readonly IReadOnlyList<IBackendModel> _instances;
    private readonly ModelStatistics _statistics;
    private readonly RequestQueue _queue;
    private readonly BatchPolicy _policy;
    private readonly Action<PendingRequest, Exception> _abandon;
    private int _running;
    private int _executing;

    /// <summary>Starts one worker thread per instance; the scheduler owns the instances and disposes them when stopped.</summary>
    public ModelScheduler(ModelConfig config, long version, IReadOnlyList<IBackendModel> instances, ModelStatistics statistics)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfZero(instances.Count);
        _config = config;
        _version = version.ToString(CultureInfo.InvariantCulture);
        _instances = instances;
        _statistics = statistics;
        _queue = new RequestQueue(config.Queue.PriorityLevels, config.Queue.MaxQueueSize);
        _policy = new BatchPolicy(config.MaxBatchSize, config.DynamicBatching);
        _abandon = _queue.Abandon;
        _running = instances.Count;
        for (var i = 0; i < instances.Count; i++)
        {
            var instance = instances[i];
            new Thread(() => Work(instance)) { IsBackground = true, Name = $"{config.Name}/{version} #{i}" }.Start();
        }
    }

    /// <summary>Requests waiting in the queue.</summary>
    public int QueueLength => _queue.Count;

    /// <summary>Requests of the batches the instances are executing now.</summary>
    public int Executing => Volatile.Read(ref _executing);

    /// <summary>
    /// Queues a validated request carrying <paramref name="batchSize"/> rows and completes when it has run. Throws
    /// RESOURCE_EXHAUSTED when the queue is full, DEADLINE_EXCEEDED when its deadline passes in the queue, and
    /// <see cref="OperationCanceledException"/> when the client cancels while it waits.
    /// </summary>
    public Task<InferenceResponse> InferAsync(InferenceRequest request, long batchSize, CancellationToken cancellationToken)
    {
        var pending = new PendingRequest(request, batchSize, PriorityLevel(request), Deadline(request));
        _queue.Enqueue(pending);
        pending.Watch(cancellationToken, _abandon);
        return pending.Completion.Task;
    }

    /// <summary>A tensor model does not generate: the dispatcher routes generation to generative models only.</summary>
    public GeneratingSequence Generate(List<int> promptTokens, GenerationRequest request, int maxTokens, Activity? activity, IDisposable lease, CancellationToken cancellationToken) =>
        throw InferenceException.InvalidArgument($"model '{_config.Name}' is not a generative model");

    /// <summary>Stops the workers; the last one to leave releases the engine instances.</summary>
    public void Dispose() => _queue.Stop();

    private int PriorityLevel(InferenceRequest request)
    {
        var levels = _config.Queue.PriorityLevels;
        if (request.Priority == 0)
        {
            return _config.Queue.DefaultPriorityLevel - 1;
        }
        if (request.Priority >= 1 && request.Priority <= levels)
        {
            return (int)request.Priority - 1;
        }
        throw InferenceException.InvalidArgument($"parameter 'priority' must be an integer from 0 (the default level) to {levels} (levels of model '{_config.Name}')");
    }

    private long Deadline(InferenceRequest request)
    {
        var timeout = _config.Queue.DefaultTimeoutMicroseconds;
        if (request.TimeoutMicroseconds is { } requested)
        {
            // A request may always shorten the model's default timeout; it extends it only when the model allows.
            if (requested > 0 && (timeout == 0 || requested < timeout || _config.Queue.AllowTimeoutOverride))
            {
                timeout = requested;
            }
        }
        return InferenceRequest.DeadlineAfter(request.Deadline, request.ReceivedTimestamp, timeout);
    }

    private void Work(IBackendModel instance)
    {
        // The instance thread's run: refilled for every batch, with the engine's state kept across them.
        using var run = new EngineRun();
        try
        {
            while (_queue.TakeBatch(_policy) is { } batch)
            {
                Interlocked.Add(ref _executing, batch.Count);
                try
                {
                    Execute(instance, run, batch);
                }
                finally
                {
                    Interlocked.Add(ref _executing, -batch.Count);
                }
            }
        }
        finally
        {
            if (Interlocked.Decrement(ref _running) == 0)
            {
                foreach (var i in _instances)
                {
                    i.Dispose();
                }
            }
        }
    }

    private void Execute(IBackendModel instance, EngineRun run, List<PendingRequest> batch)
    {
        var started = Stopwatch.GetTimestamp();
        long rows = 0;
        foreach (var pending in batch)
        {
            _statistics.Queue.Record(started - pending.Request.ReceivedTimestamp);
            rows += pending.BatchSize;
        }
        foreach (var pending in batch)
        {
            Telemetry.RecordExecution(pending.Request.Activity, rows, pending.Enqueued, started);
        }
        var timings = new ExecutionTimings();
        var responses = new InferenceResponse[batch.Count];
        try
        {
            var outputs = batch[0].Request.RequestedOutputs.Count > 0 ? batch[0].Request.RequestedOutputs : _config.OutputNames;
            for (var i = 0; i < batch.Count; i++)
            {
                responses[i] = new InferenceResponse(_config.Name, _version, batch[i].Request.Id);
            }
            run.Inputs.Clear();
            run.AskFor(outputs);
            if (batch.Count == 1)
            {
                // One request: the engine reads its tensors as they are, and its outputs are the response's.
                run.Inputs.AddRange(batch[0].Request.Inputs);
                try
                {
                    instance.Execute(run, ref timings);
                }
                finally
                {
                    run.Inputs.Clear();
                }
                foreach (var output in run.Outputs)
                {
                    responses[0].Outputs.Add(output.TakeResult());
                }
            }
            else
            {
                BatchAssembler.Gather(batch, rows, run.Inputs);
                try
                {
                    instance.Execute(run, ref timings);
                    var batched = new Tensor[run.Outputs.Count];
                    for (var i = 0; i < batched.Length; i++)
                    {
                        batched[i] = run.Outputs[i].TakeResult();
                    }
                    try
                    {
                        BatchAssembler.Scatter(batched, batch, rows, responses);
                    }
                    finally
                    {
                        // The responses hold slices of the batch's outputs; these references go.
                        foreach (var tensor in batched)
                        {
                            tensor.Dispose();
                        }
                    }
                }
                finally
                {
                    foreach (var gathered in run.Inputs)
                    {
                        gathered.Dispose();
                    }
                    run.Inputs.Clear();
                }
            }
        }
        catch (Exception e)
        {
            foreach (var response in responses)
            {
                response?.Dispose();
            }
            var error = e as InferenceException ?? new InferenceException(InferenceErrorKind.Internal, "model execution failed: " + e.Message, e);
            var failed = Stopwatch.GetTimestamp();
            foreach (var pending in batch)
            {
                _statistics.RecordFailure(failed - pending.Request.ReceivedTimestamp, error.Kind);
                pending.Completion.TrySetException(error);
            }
            return;
        }
        _statistics.RecordExecution(rows, timings.InputTicks, timings.InferTicks, timings.OutputTicks);
        var done = Stopwatch.GetTimestamp();
        for (var i = 0; i < batch.Count; i++)
        {
            _statistics.Success.Record(done - batch[i].Request.ReceivedTimestamp);
            batch[i].Completion.TrySetResult(responses[i]);
        }
    }
}
