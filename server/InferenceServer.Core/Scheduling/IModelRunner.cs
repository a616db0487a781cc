using System.Diagnostics;
using InferenceServer.Generation;
using InferenceServer.Inference;

namespace InferenceServer.Scheduling;

/// <summary>
/// What runs one model version's work (Triton's scheduler per model); a version holds exactly one. Today: the dynamic
/// batcher of a tensor model (<see cref="ModelScheduler"/>) or the continuous batcher of a generative one
/// (<see cref="ContinuousBatcher"/>). Disposing it stops it: work in flight ends, then its engine instances are released.
/// </summary>
internal interface IModelRunner : IDisposable
{
    /// <summary>Requests waiting for the engine (for a generative model, for a running slot).</summary>
    int QueueLength { get; }

    /// <summary>Requests the engine is executing now (the requests of running batches, or running sequences).</summary>
    int Executing { get; }

    /// <summary>
    /// Accepts a validated tensor request carrying <paramref name="batchSize"/> rows; completes when it has run.
    /// RESOURCE_EXHAUSTED when the queue is full, DEADLINE_EXCEEDED when its deadline passes in the queue.
    /// </summary>
    Task<InferenceResponse> InferAsync(InferenceRequest request, long batchSize, CancellationToken cancellationToken);

    /// <summary>Accepts a generation of up to <paramref name="maxTokens"/> tokens after <paramref name="promptTokens"/>;
    /// <paramref name="lease"/> is released when it ends.</summary>
    GeneratingSequence Generate(List<int> promptTokens, GenerationRequest request, int maxTokens, Activity? activity, IDisposable lease, CancellationToken cancellationToken);
}
