using System.Diagnostics;
using InferenceServer.Admission;
using InferenceServer.Generation;
using InferenceServer.Observability;
using InferenceServer.Repository;

namespace InferenceServer.Inference;

/// <summary>
/// The protocol-free entry point of every inference: finds the model version once, then hands the work to the
/// version's runner — a tensor request validated against the configuration to the dynamic batcher of a tensor model; a
/// <c>text_input</c> request or a generation to the continuous batcher of a generative one — and records the statistics.
/// </summary>
public sealed class InferenceDispatcher : IInferenceDispatcher, ITextGenerator
{
    private readonly ModelRepository _repository;
    private readonly RequestLimits _limits;
    private readonly AdmissionController? _admission;

    /// <summary>
    /// Creates a dispatcher over the repository, enforcing <paramref name="limits"/> (the defaults when null);
    /// <paramref name="admission"/> (rate and concurrency limits) is optional.
    /// </summary>
    public InferenceDispatcher(ModelRepository repository, RequestLimits? limits = null, AdmissionController? admission = null)
    {
        ArgumentNullException.ThrowIfNull(repository);
        _repository = repository;
        _limits = limits ?? new RequestLimits();
        _admission = admission;
    }

    /// <inheritdoc />
    public RequestLimits Limits => _limits;

    /// <inheritdoc />
    public Dispatched Dispatch(InferenceRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var lease = _repository.Acquire(request.ModelName, request.ModelVersion);
        if (lease.Version.Generation is null)
        {
            return new Dispatched(InferOnLeaseAsync(request, lease, fallbackFor: null, cancellationToken));
        }
        // The generation owns the lease once started; a request it cannot take gives the lease back.
        return Dispatched.StartGeneration(request, generation => GenerateOnLeaseAsync(request.ModelName, generation, lease, cancellationToken), notStarted: lease.Dispose);
    }

    /// <inheritdoc />
    public Task<InferenceResponse> InferAsync(InferenceRequest request, CancellationToken cancellationToken)
    {
        // A tensor inference's task is the response itself: no further await on the request path.
        var dispatched = Dispatch(request, cancellationToken);
        return dispatched.Tensors ?? dispatched.ResponseAsync(request.Id, cancellationToken);
    }

    /// <summary>
    /// Runs a request on the leased version (owning the lease): the request's own model, or the fallback of
    /// <paramref name="fallbackFor"/>'s open breaker.
    /// </summary>
    private async Task<InferenceResponse> InferOnLeaseAsync(InferenceRequest request, ModelLease lease, string? fallbackFor, CancellationToken cancellationToken)
    {
        using var _ = lease;
        var model = lease.Version.Name;
        // Admission control before the scheduler, for the model the client named (a fallback hop was admitted with it);
        // its lease (a concurrency permit) is held until the response.
        using var admitted = fallbackFor is null ? await AdmitAsync(lease, request.Tenant, cancellationToken).ConfigureAwait(false) : null;
        using var activity = request.Activity = Telemetry.StartInference(lease.Version.Name, lease.Version.Version);
        Task<InferenceResponse>? scheduled = null;
        // The circuit breaker: asked after validation (bad input is answered 400 and never counts), told the outcome.
        var breaker = lease.Version.Breaker;
        var permit = default(CircuitPermit);
        string? fallback = null;
        var retryAfter = TimeSpan.Zero;
        try
        {
            if (lease.Version.Generation is not null)
            {
                // Only a fallback hop gets here: the fallback model is generative and cannot take tensors.
                throw InferenceException.InvalidArgument(
                    $"model '{model}' is a generative model: send a BYTES input 'text_input', or use generate or the OpenAI API");
            }
            var batch = RequestValidator.Validate(request, lease.Config);
            _limits.ApplyDefaultTimeout(request, lease.Config.Queue.DefaultTimeoutMicroseconds);
            if (breaker is not null && !breaker.TryAcquire(out permit, out retryAfter))
            {
                // Open: the fallback model serves (one hop: a fallback's own open breaker does not pass it on), or 503.
                fallback = fallbackFor is null ? breaker.Options.FallbackModel : null;
                if (fallback is null)
                {
                    throw breaker.Refuse(retryAfter);
                }
            }
            else
            {
                scheduled = lease.Runner.InferAsync(request, batch, cancellationToken);
            }
        }
        catch (Exception e)
        {
            breaker?.Release(permit);
            lease.Version.Statistics.RecordFailure(Stopwatch.GetTimestamp() - request.ReceivedTimestamp, e);
            Telemetry.RecordFailure(activity, e);
            throw;
        }
        if (fallback is not null)
        {
            try
            {
                var served = await InferOnFallbackAsync(request, breaker!, fallback, retryAfter, cancellationToken).ConfigureAwait(false);
                Telemetry.RecordSuccess(activity);
                return served;
            }
            catch (Exception e)
            {
                Telemetry.RecordFailure(activity, e);
                throw;
            }
        }
        try
        {
            var response = await scheduled!.ConfigureAwait(false);
            breaker?.OnSuccess(permit);
            Telemetry.RecordSuccess(activity);
            return response;
        }
        catch (Exception e) when (e is OperationCanceledException || e is InferenceException { Kind: InferenceErrorKind.DeadlineExceeded })
        {
            breaker?.Release(permit);
            // Dropped in the queue: it never reached the engine, so the scheduler did not count it.
            lease.Version.Statistics.RecordFailure(Stopwatch.GetTimestamp() - request.ReceivedTimestamp, e);
            Telemetry.RecordFailure(activity, e);
            throw;
        }
        catch (Exception e)
        {
            // Only the engine's failures count against the breaker; a full queue or a client's mistake does not.
            if (InferenceStatus.KindOf(e) == InferenceErrorKind.Internal)
            {
                breaker?.OnFailure(permit);
            }
            else
            {
                breaker?.Release(permit);
            }
            Telemetry.RecordFailure(activity, e);
            throw;
        }
    }

    /// <summary>
    /// Serves a request whose model's breaker is open by the fallback model. The fallback sees the same inputs; when it
    /// cannot serve them (not loaded, not ready, its own breaker open, or inputs it does not accept), the answer is
    /// 503 / UNAVAILABLE: the request was valid for the model the client asked for, so it is not the client's mistake.
    /// </summary>
    private async Task<InferenceResponse> InferOnFallbackAsync(
        InferenceRequest request, CircuitBreaker breaker, string fallback, TimeSpan retryAfter, CancellationToken cancellationToken)
    {
        InferenceResponse response;
        try
        {
            response = await InferOnLeaseAsync(request, _repository.Acquire(fallback, ""), breaker.Model, cancellationToken).ConfigureAwait(false);
        }
        catch (InferenceException e) when (FallbackCannotServe(e))
        {
            throw breaker.FallbackFailed(fallback, e, retryAfter);
        }
        response.FallbackFor = breaker.Model;
        breaker.FallbackServed();
        return response;
    }

    /// <summary>
    /// Whether the fallback model's answer means it cannot serve a request its primary could (not loaded, not ready,
    /// its own breaker open, inputs or a prompt it does not accept): then 503, not the client's mistake.
    /// </summary>
    private static bool FallbackCannotServe(InferenceException e) =>
        e.Kind is InferenceErrorKind.NotFound or InferenceErrorKind.Unavailable or InferenceErrorKind.InvalidArgument;

    /// <inheritdoc />
    public ValueTask<GenerationStream> GenerateAsync(string model, string? version, GenerationRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        return GenerateOnLeaseAsync(model, request, _repository.Acquire(model, version ?? ""), cancellationToken);
    }

    /// <summary>Admits a generation on the leased version and starts it; the lease passes to the sequence (or is released on failure).</summary>
    private ValueTask<GenerationStream> GenerateOnLeaseAsync(string model, GenerationRequest request, ModelLease lease, CancellationToken cancellationToken)
    {
        var arrived = Stopwatch.GetTimestamp();
        ValueTask<IDisposable?> admission;
        try
        {
            admission = AdmitAsync(lease, request.Tenant, cancellationToken, generation: true);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        return admission.IsCompletedSuccessfully
            ? ValueTask.FromResult(Generate(model, request, lease, admission.Result, arrived, cancellationToken))
            : GenerateAfterAdmissionAsync(model, request, lease, admission, arrived, cancellationToken);
    }

    /// <summary>Asks admission control (when configured) to admit a request for the leased version; null: no limits.</summary>
    private ValueTask<IDisposable?> AdmitAsync(ModelLease lease, string? tenant, CancellationToken cancellationToken, bool generation = false) =>
        _admission is null
            ? ValueTask.FromResult<IDisposable?>(null)
            : _admission.AdmitAsync(lease.Version.Name, lease.Version.Version.ToString(System.Globalization.CultureInfo.InvariantCulture), tenant, generation, cancellationToken);

    private async ValueTask<GenerationStream> GenerateAfterAdmissionAsync(
        string model, GenerationRequest request, ModelLease lease, ValueTask<IDisposable?> admission, long arrived, CancellationToken cancellationToken)
    {
        IDisposable? admitted;
        try
        {
            admitted = await admission.ConfigureAwait(false);
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        return Generate(model, request, lease, admitted, arrived, cancellationToken);
    }

    /// <summary>
    /// Starts an admitted generation on the leased version (owning both leases: the sequence releases them when the
    /// stream ends). Through the version's circuit breaker, as tensor inference: asked after the prompt is validated (bad
    /// input is a 400 and never counts) and told the stream's outcome when it ends (<see cref="GenerationLease"/>); while
    /// it is open, the request goes to its fallback model (<see cref="GenerateOnFallback"/>), or is refused with 503.
    /// </summary>
    private GenerationStream Generate(
        string model, GenerationRequest request, ModelLease lease, IDisposable? admitted, long arrived, CancellationToken cancellationToken, string? fallbackFor = null)
    {
        Activity? activity = null;
        var breaker = lease.Version.Breaker;
        var permit = default(CircuitPermit);
        string? fallback = null;
        var retryAfter = TimeSpan.Zero;
        try
        {
            var generation = lease.Version.Generation
                ?? throw InferenceException.InvalidArgument($"model '{model}' is not a generative model: use infer with its tensors");
            request.Sampling.Validate();
            _limits.ApplyGenerationTimeout(request, arrived);
            // The prompt's tokens, then admission by tokens: a KV-cache decoder's prompt and completion must fit its context.
            var tokens = PromptAdmission.Tokens(generation, request);
            var maxTokens = PromptAdmission.MaxTokens(generation.Settings, tokens.Count, request.MaxTokens, chat: request.Messages is not null);
            if (breaker is not null && !breaker.TryAcquire(out permit, out retryAfter))
            {
                // Open: the fallback model serves (one hop: a fallback's own open breaker does not pass it on), or 503.
                fallback = fallbackFor is null ? breaker.Options.FallbackModel : null;
                if (fallback is null)
                {
                    throw breaker.Refuse(retryAfter);
                }
            }
            else
            {
                activity = StartActivity(model, lease.Version, request, maxTokens);
                // The model's token budget (tokens per minute) is charged the prompt now and the generated tokens at the end.
                (admitted as ITokenMeter)?.Charge(tokens.Count);
                var owned = new GenerationLease(lease, admitted, breaker, permit);
                var sequence = lease.Runner.Generate(tokens, request, maxTokens, activity, owned, cancellationToken);
                return new GenerationStream(model, lease.Version.Version.ToString(System.Globalization.CultureInfo.InvariantCulture), tokens.Count, sequence.Chunks);
            }
        }
        catch (Exception e)
        {
            breaker?.Release(permit);
            lease.Version.Statistics.RecordFailure(Stopwatch.GetTimestamp() - arrived, e);
            Telemetry.RecordFailure(activity, e);
            activity?.Stop();
            admitted?.Dispose();
            lease.Dispose();
            throw;
        }
        lease.Dispose();
        return GenerateOnFallback(request, breaker!, fallback, retryAfter, admitted, arrived, cancellationToken);
    }

    /// <summary>
    /// Serves a generation whose model's breaker is open by the fallback model, with its own tokenizer, chat template
    /// and breaker; the request's admission lease goes with it. When the fallback cannot serve it (not loaded, not
    /// ready, its own breaker open, or a prompt it does not accept), the answer is 503 / UNAVAILABLE: the request was
    /// valid for the model the client asked for.
    /// </summary>
    private GenerationStream GenerateOnFallback(
        GenerationRequest request, CircuitBreaker breaker, string fallback, TimeSpan retryAfter, IDisposable? admitted, long arrived, CancellationToken cancellationToken)
    {
        ModelLease lease;
        try
        {
            lease = _repository.Acquire(fallback, "");
        }
        catch (InferenceException e) when (FallbackCannotServe(e))
        {
            admitted?.Dispose();
            throw breaker.FallbackFailed(fallback, e, retryAfter);
        }
        GenerationStream stream;
        try
        {
            stream = Generate(fallback, request, lease, admitted, arrived, cancellationToken, fallbackFor: breaker.Model);
        }
        catch (InferenceException e) when (FallbackCannotServe(e))
        {
            throw breaker.FallbackFailed(fallback, e, retryAfter);
        }
        stream.FallbackFor = breaker.Model;
        breaker.FallbackServed();
        return stream;
    }

    /// <inheritdoc />
    public IReadOnlyList<GenerativeModelInfo> ListModels() =>
        _repository.Versions()
            .Where(v => v.State == ModelState.Ready && v.Config?.Generation is not null)
            .GroupBy(v => v.Name)
            .Select(g => g.MaxBy(v => v.Version)!)
            .OrderBy(v => v.Name, StringComparer.Ordinal)
            .Select(v => new GenerativeModelInfo(v.Name, v.Version.ToString(System.Globalization.CultureInfo.InvariantCulture), v.Config!.Generation!.ContextWindow, v.LoadedUnixSeconds))
            .ToArray();

    /// <inheritdoc />
    public GenerationModel Tokenization(string model)
    {
        using var lease = _repository.Acquire(model, "");
        return lease.Version.Generation
            ?? throw InferenceException.InvalidArgument($"model '{model}' is not a generative model: it has no tokenizer");
    }

    /// <summary>
    /// A generation's model lease, its admission lease and its circuit-breaker permit, released together when the stream
    /// ends. A stream's outcome for the breaker: failed when the engine failed (before or after its first token), slow
    /// when its time to first token (or to its failure before one) passed the slow-call duration; a cancelled stream
    /// counts for nothing, as a cancelled tensor request.
    /// </summary>
    private sealed class GenerationLease(ModelLease lease, IDisposable? admitted, CircuitBreaker? breaker, CircuitPermit permit) : IDisposable, IGenerationObserver
    {
        private TimeSpan? _firstToken;

        public void FirstToken()
        {
            if (breaker is not null)
            {
                _firstToken = breaker.Elapsed(permit);
            }
        }

        public void Ended(bool engineFailed, bool cancelled, int completionTokens)
        {
            (admitted as ITokenMeter)?.Charge(completionTokens);
            if (breaker is null)
            {
                return;
            }
            if (cancelled && !engineFailed)
            {
                breaker.Release(permit);
                return;
            }
            breaker.OnOutcome(permit, engineFailed, _firstToken ?? breaker.Elapsed(permit));
        }

        public void Dispose()
        {
            admitted?.Dispose();
            lease.Dispose();
        }
    }

    /// <summary>The request's span, with the OpenTelemetry GenAI attributes; the sequence ends it with the usage.</summary>
    private static Activity? StartActivity(string model, ModelVersion version, GenerationRequest request, int maxTokens)
    {
        if (!Telemetry.Source.HasListeners())
        {
            return null;
        }
        var parent = Activity.Current;
        var activity = Telemetry.Source.StartActivity($"{request.Operation} {model}", ActivityKind.Internal);
        // The span ends on the batcher's thread; the caller's context keeps its own current span.
        Activity.Current = parent;
        if (activity is null)
        {
            return null;
        }
        activity.SetTag(Telemetry.OperationName, request.Operation);
        activity.SetTag(Telemetry.RequestModel, model);
        activity.SetTag(Telemetry.ResponseModel, $"{model}:{version.Version}");
        activity.SetTag(Telemetry.ModelName, version.Name);
        activity.SetTag(Telemetry.ModelVersion, version.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
        activity.SetTag(Telemetry.RequestMaxTokens, maxTokens);
        activity.SetTag(Telemetry.RequestTemperature, request.Sampling.Temperature);
        activity.SetTag(Telemetry.RequestTopP, request.Sampling.TopP);
        if (request.Sampling.TopK > 0)
        {
            activity.SetTag(Telemetry.RequestTopK, request.Sampling.TopK);
        }
        if (request.Id.Length > 0)
        {
            activity.SetTag(Telemetry.ResponseId, request.Id);
        }
        return activity;
    }
}
