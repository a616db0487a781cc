using InferenceServer.Generation;

namespace InferenceServer.Inference;

/// <summary>
/// The one entry point the protocol adapters hand requests to (implemented by <see cref="InferenceDispatcher"/>). An
/// adapter parses its protocol into an <see cref="InferenceRequest"/> with typed fields and lets the dispatcher decide,
/// after one repository lookup, whether a tensor model infers or a generative model generates.
/// </summary>
public interface IInferenceDispatcher
{
    /// <summary>The request limits enforced, for the adapters to check shapes before decoding data.</summary>
    RequestLimits Limits { get; }

    /// <summary>
    /// Finds the request's model version (one lookup) and starts its work there: a tensor model's inference through
    /// its scheduler, or, for a generative model, the generation its <c>text_input</c> asks for (see
    /// <see cref="TextTensors"/>). Throws <see cref="InferenceException"/> when the model cannot be found or is not
    /// ready; every later error is in the returned task. The request may be disposed once the work has started for a
    /// generation, and once the response has arrived for a tensor inference.
    /// </summary>
    Dispatched Dispatch(InferenceRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Runs one request to its response: a tensor model's outputs, or a generative model's whole text as
    /// <c>text_output</c> (BYTES, shape [1]). Errors are <see cref="InferenceException"/>s whose messages are safe for
    /// clients (or <see cref="OperationCanceledException"/> when the client cancelled); as with <see cref="Dispatch"/>,
    /// a model that cannot be found or is not ready throws before a task is returned.
    /// </summary>
    Task<InferenceResponse> InferAsync(InferenceRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// Where <see cref="IInferenceDispatcher.Dispatch"/> sent a request: exactly one of <see cref="Tensors"/> (a tensor
/// model's inference, running) and <see cref="Generation"/> (a generative model's generation, being admitted).
/// </summary>
public readonly struct Dispatched
{
    /// <summary>A tensor inference.</summary>
    public Dispatched(Task<InferenceResponse> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Tensors = tensors;
    }

    /// <summary>A generation; <paramref name="streamed"/> is what the request's <c>stream</c> input or parameter said.</summary>
    public Dispatched(Task<GenerationStream> generation, bool? streamed)
    {
        ArgumentNullException.ThrowIfNull(generation);
        Generation = generation;
        Streamed = streamed;
    }

    /// <summary>
    /// The generation a <c>text_input</c> request asks for (<see cref="TextTensors"/>), started by
    /// <paramref name="start"/>. A request that is not a valid generation, or one <paramref name="start"/> refuses at
    /// once (a full queue), is the generation's error; <paramref name="notStarted"/> runs when the request never reached
    /// <paramref name="start"/>.
    /// </summary>
    public static Dispatched StartGeneration(InferenceRequest request, Func<GenerationRequest, ValueTask<GenerationStream>> start, Action? notStarted = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(start);
        GenerationRequest generation;
        bool? streamed;
        try
        {
            generation = TextTensors.ToGenerationRequest(request, out streamed);
        }
        catch (Exception e)
        {
            notStarted?.Invoke();
            return new Dispatched(Task.FromException<GenerationStream>(e), streamed: null);
        }
        Task<GenerationStream> started;
        try
        {
            started = start(generation).AsTask();
        }
        catch (Exception e)
        {
            started = Task.FromException<GenerationStream>(e);
        }
        return new Dispatched(started, streamed);
    }

    /// <summary>The tensor inference's response; null for a generation.</summary>
    public Task<InferenceResponse>? Tensors { get; }

    /// <summary>The generation's stream once admitted; null for a tensor inference.</summary>
    public Task<GenerationStream>? Generation { get; }

    /// <summary>What the request's <c>stream</c> input or parameter asked for (null: not said).</summary>
    public bool? Streamed { get; }

    /// <summary>The response: the tensor inference's, or the generation read to its end as <c>text_output</c>.</summary>
    public async Task<InferenceResponse> ResponseAsync(string requestId, CancellationToken cancellationToken)
    {
        if (Tensors is { } tensors)
        {
            return await tensors.ConfigureAwait(false);
        }
        var stream = await (Generation ?? throw new InvalidOperationException("nothing was dispatched")).ConfigureAwait(false);
        var result = await GenerationResult.ReadAsync(stream, cancellationToken).ConfigureAwait(false);
        var response = new InferenceResponse(stream.ModelName, stream.ModelVersion, requestId) { FallbackFor = stream.FallbackFor };
        response.Outputs.Add(TextTensors.TextTensor(result.Text));
        return response;
    }
}
