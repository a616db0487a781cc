using Prometheus;

namespace InferenceServer.Observability;

/// <summary>
/// Every Prometheus metric the server exports, by name, in one place. Each server instance has its own registry
/// (scraped at <c>/metrics</c>), so servers in one process (tests) do not mix their series.
/// </summary>
public sealed class ServerMetrics
{
    /// <summary>The label of the model name on per-model series.</summary>
    public const string ModelLabel = "model";

    /// <summary>The label of the model version on per-model series.</summary>
    public const string VersionLabel = "version";

    /// <summary>The label of the model name on the series named as vLLM names them (vLLM's own label name).</summary>
    public const string VllmModelLabel = "model_name";

    private static readonly string[] BreakerStates = ["CLOSED", "OPEN", "HALF_OPEN"];
    private static readonly double[] LatencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60];
    private static readonly double[] TokenIntervalBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5];
    private static readonly double[] BatchBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256];
    private static readonly double[] LengthBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000];

    /// <summary>Creates the registry and its metrics.</summary>
    public ServerMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        var factory = Metrics.WithCustomRegistry(Registry);
        string[] labels = [ModelLabel, VersionLabel];
        // Every histogram is per model version.
        Histogram Histogram(string name, string help, double[] buckets) =>
            factory.CreateHistogram(name, help, new HistogramConfiguration { LabelNames = labels, Buckets = buckets });
        PromptTokens = factory.CreateCounter("inference_prompt_tokens_total", "Prompt tokens of finished generation requests.", labels);
        GenerationTokens = factory.CreateCounter("inference_generation_tokens_total", "Tokens generated.", labels);
        TimeToFirstToken = Histogram("inference_time_to_first_token_seconds",
            "Time from a generation request's arrival to its first generated token.", LatencyBuckets);
        TimePerOutputToken = Histogram("inference_time_per_output_token_seconds",
            "Time between consecutive generated tokens of a request.", TokenIntervalBuckets);
        RequestLatency = Histogram("inference_e2e_request_latency_seconds",
            "Time from a generation request's arrival to its last token.", LatencyBuckets);
        RequestPromptTokens = Histogram("inference_request_prompt_tokens",
            "Prompt length of finished generation requests, in tokens.", LengthBuckets);
        RequestGenerationTokens = Histogram("inference_request_generation_tokens",
            "Generated length of finished generation requests, in tokens.", LengthBuckets);
        RequestsRunning = factory.CreateGauge("inference_num_requests_running", "Sequences in the continuous batch.", labels);
        RequestsWaiting = factory.CreateGauge("inference_num_requests_waiting", "Generation requests waiting for a slot in the batch.", labels);
        Requests = factory.CreateCounter("inference_requests_total",
            "Requests a model version finished, by outcome (success, failure) and status (OK or the error's gRPC status name).", [ModelLabel, VersionLabel, "outcome", "status"]);
        Rejections = factory.CreateCounter("inference_rejections_total",
            "Requests turned away before the engine, by reason (queue_full, deadline, drain, rate_limit, concurrency, circuit_open).", [ModelLabel, VersionLabel, "reason"]);
        DrainPhase = factory.CreateGauge("inference_server_drain_phase",
            "Shutdown phase: 0 serving, 1 draining (readiness failing, still accepting), 2 closing (listeners closed, finishing accepted requests).");
        RequestDuration = Histogram("inference_request_duration_seconds",
            "Time from a request's arrival to its response, successful requests.", LatencyBuckets);
        QueueDuration = Histogram("inference_queue_duration_seconds",
            "Time a request waited in the model's queue before its execution started.", LatencyBuckets);
        ComputeDuration = Histogram("inference_compute_duration_seconds",
            "Engine time of one execution (inputs, run, outputs); a batch is one execution.", LatencyBuckets);
        BatchSize = Histogram("inference_batch_size",
            "Inferences per execution (the batch sizes the engine saw; for generative models, sequences per decode step).", BatchBuckets);
        ModelState = factory.CreateGauge("inference_model_state",
            "1 for the state each model version is in (LOADING, READY, UNAVAILABLE, UNLOADING), else 0.", [ModelLabel, VersionLabel, "state"]);
        InFlight = factory.CreateGauge("inference_requests_in_flight", "Requests holding a model version: queued, running or streaming.", labels);
        QueueDepth = factory.CreateGauge("inference_queue_depth", "Requests waiting in a model version's queue.", labels);
        LoadDuration = factory.CreateGauge("inference_model_load_duration_seconds", "How long loading a model version took.", labels);
        WarmupDuration = factory.CreateGauge("inference_model_warmup_duration_seconds",
            "How long a model version's warmup samples ran (after the load; 0 without model_warmup).", labels);
        GenerationRequests = factory.CreateCounter("inference_generation_requests_total",
            "Finished generation requests by finish reason (stop, length, cancelled, error).", [ModelLabel, VersionLabel, "finish_reason"]);
        AccessLogDropped = factory.CreateCounter("inference_access_log_dropped_total",
            "Access log lines dropped because the queue to stdout was full.");
        CircuitBreakerState = factory.CreateGauge("inference_circuit_breaker_state",
            "1 for the state the circuit breaker of each model version with one is in (CLOSED, OPEN, HALF_OPEN), else 0.", [ModelLabel, VersionLabel, "state"]);
        CircuitBreakerFallbacks = factory.CreateCounter("inference_circuit_breaker_fallback_total",
            "Requests served by the fallback model because the model version's circuit breaker was open.", [ModelLabel, VersionLabel, "fallback"]);
        // process_* and dotnet_* (CPU, memory, threads, handles, GC collections), read at each scrape; once per registry.
        DotNetStats.Register(Registry);
    }

    /// <summary>The registry <c>/metrics</c> exports.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>inference_prompt_tokens_total.</summary>
    public Counter PromptTokens { get; }

    /// <summary>inference_generation_tokens_total.</summary>
    public Counter GenerationTokens { get; }

    /// <summary>inference_time_to_first_token_seconds.</summary>
    public Histogram TimeToFirstToken { get; }

    /// <summary>inference_time_per_output_token_seconds.</summary>
    public Histogram TimePerOutputToken { get; }

    /// <summary>inference_e2e_request_latency_seconds.</summary>
    public Histogram RequestLatency { get; }

    /// <summary>inference_request_prompt_tokens.</summary>
    public Histogram RequestPromptTokens { get; }

    /// <summary>inference_request_generation_tokens.</summary>
    public Histogram RequestGenerationTokens { get; }

    /// <summary>inference_num_requests_running.</summary>
    public Gauge RequestsRunning { get; }

    /// <summary>inference_num_requests_waiting.</summary>
    public Gauge RequestsWaiting { get; }

    /// <summary>The gauges named as vLLM names them (written after the registry at /metrics).</summary>
    public VllmGauges Vllm { get; } = new();

    /// <summary>inference_generation_requests_total.</summary>
    public Counter GenerationRequests { get; }

    /// <summary>inference_access_log_dropped_total.</summary>
    public Counter AccessLogDropped { get; }

    /// <summary>inference_circuit_breaker_state.</summary>
    public Gauge CircuitBreakerState { get; }

    /// <summary>inference_circuit_breaker_fallback_total.</summary>
    public Counter CircuitBreakerFallbacks { get; }

    /// <summary>The fallback and rejection series of one model version's circuit breaker.</summary>
    public CircuitBreakerMetrics ForCircuitBreaker(string model, string version, string? fallback) =>
        new(fallback is null ? null : CircuitBreakerFallbacks.WithLabels(model, version, fallback), Rejections.WithLabels(model, version, RequestMetrics.CircuitOpen));

    /// <summary>inference_requests_total.</summary>
    public Counter Requests { get; }

    /// <summary>inference_rejections_total.</summary>
    public Counter Rejections { get; }

    /// <summary>inference_server_drain_phase.</summary>
    public Gauge DrainPhase { get; }

    /// <summary>Counts a rejection that happened before any model was chosen (a drain turning a request away).</summary>
    public void Rejected(string reason) => Rejections.WithLabels("", "", reason).Inc();

    /// <summary>inference_model_state.</summary>
    public Gauge ModelState { get; }

    /// <summary>inference_requests_in_flight.</summary>
    public Gauge InFlight { get; }

    /// <summary>inference_queue_depth.</summary>
    public Gauge QueueDepth { get; }

    /// <summary>inference_model_load_duration_seconds.</summary>
    public Gauge LoadDuration { get; }

    /// <summary>inference_model_warmup_duration_seconds.</summary>
    public Gauge WarmupDuration { get; }

    /// <summary>
    /// Reads the repository's model versions at every scrape (state, in-flight requests, queue depth, load and warmup time);
    /// series of versions that are gone are removed.
    /// </summary>
    public void Track(Repository.ModelRepository repository)
    {
        var previous = new HashSet<(string Model, string Version)>();
        var gate = new Lock();
        string[] states = ["LOADING", "READY", "UNAVAILABLE", "UNLOADING"];
        Registry.AddBeforeCollectCallback(() =>
        {
            // Two scrapes at once must not interleave their bookkeeping.
            using var _ = gate.EnterScope();
            var current = new HashSet<(string Model, string Version)>();
            foreach (var version in repository.Versions())
            {
                if (version.Version == 0)
                {
                    continue;
                }
                var key = (version.Name, version.Version.ToString(System.Globalization.CultureInfo.InvariantCulture));
                current.Add(key);
                var state = Repository.ModelRepository.StateName(version.State);
                foreach (var name in states)
                {
                    ModelState.WithLabels(key.Name, key.Item2, name).Set(name == state ? 1 : 0);
                }
                InFlight.WithLabels(key.Name, key.Item2).Set(version.InFlight);
                QueueDepth.WithLabels(key.Name, key.Item2).Set(version.QueueLength);
                LoadDuration.WithLabels(key.Name, key.Item2).Set(version.LoadDuration.TotalSeconds);
                WarmupDuration.WithLabels(key.Name, key.Item2).Set(version.WarmupDuration.TotalSeconds);
                if (version.Breaker is { } breaker)
                {
                    var breakerState = Admission.CircuitBreaker.Name(breaker.State);
                    foreach (var name in BreakerStates)
                    {
                        CircuitBreakerState.WithLabels(key.Name, key.Item2, name).Set(name == breakerState ? 1 : 0);
                    }
                }
            }
            foreach (var gone in previous.Where(p => !current.Contains(p)))
            {
                foreach (var name in states)
                {
                    ModelState.RemoveLabelled(gone.Model, gone.Version, name);
                }
                InFlight.RemoveLabelled(gone.Model, gone.Version);
                QueueDepth.RemoveLabelled(gone.Model, gone.Version);
                LoadDuration.RemoveLabelled(gone.Model, gone.Version);
                WarmupDuration.RemoveLabelled(gone.Model, gone.Version);
                foreach (var name in BreakerStates)
                {
                    CircuitBreakerState.RemoveLabelled(gone.Model, gone.Version, name);
                }
            }
            previous = current;
        });
    }

    /// <summary>inference_request_duration_seconds.</summary>
    public Histogram RequestDuration { get; }

    /// <summary>inference_queue_duration_seconds.</summary>
    public Histogram QueueDuration { get; }

    /// <summary>inference_compute_duration_seconds.</summary>
    public Histogram ComputeDuration { get; }

    /// <summary>inference_batch_size.</summary>
    public Histogram BatchSize { get; }

    /// <summary>
    /// Creates the inference_gpu_* gauges (labels gpu, uuid, name). Called only when NVML is available, so that on a machine
    /// without a GPU these metrics are absent from <c>/metrics</c> rather than zero.
    /// </summary>
    public GpuGauges CreateGpuGauges()
    {
        var factory = Metrics.WithCustomRegistry(Registry);
        string[] labels = [GpuGauges.GpuLabel, GpuGauges.UuidLabel, GpuGauges.NameLabel];
        return new GpuGauges(
            factory.CreateGauge("inference_gpu_utilization_ratio", "Fraction of the last sample period in which the GPU was running kernels (NVML).", labels),
            factory.CreateGauge("inference_gpu_memory_used_bytes", "GPU memory in use (NVML).", labels),
            factory.CreateGauge("inference_gpu_memory_total_bytes", "GPU memory installed (NVML).", labels),
            factory.CreateGauge("inference_gpu_power_watts", "GPU power draw (NVML).", labels),
            factory.CreateGauge("inference_gpu_temperature_celsius", "GPU core temperature (NVML).", labels));
    }

    /// <summary>The request series of one model version.</summary>
    public RequestMetrics ForRequests(string model, string version) => new(this, model, version);

    /// <summary>The series of one generative model version, resolved once so the decode loop does no label lookups.</summary>
    public GenerationMetrics ForGeneration(string model, string version) => new(this, model, version);
}

/// <summary>One generative model version's token metrics (children of <see cref="ServerMetrics"/>' families).</summary>
public sealed class GenerationMetrics
{
    private readonly ServerMetrics _metrics;
    private readonly string[] _labels;

    internal GenerationMetrics(ServerMetrics metrics, string model, string version)
    {
        _metrics = metrics;
        _labels = [model, version];
        PromptTokens = metrics.PromptTokens.WithLabels(_labels);
        GenerationTokens = metrics.GenerationTokens.WithLabels(_labels);
        TimeToFirstToken = metrics.TimeToFirstToken.WithLabels(_labels);
        TimePerOutputToken = metrics.TimePerOutputToken.WithLabels(_labels);
        RequestLatency = metrics.RequestLatency.WithLabels(_labels);
        RequestPromptTokens = metrics.RequestPromptTokens.WithLabels(_labels);
        RequestGenerationTokens = metrics.RequestGenerationTokens.WithLabels(_labels);
        _running = metrics.RequestsRunning.WithLabels(_labels);
        _waiting = metrics.RequestsWaiting.WithLabels(_labels);
        _vllmRunning = metrics.Vllm.For(VllmGauges.Running, model, version);
        _vllmWaiting = metrics.Vllm.For(VllmGauges.Waiting, model, version);
        _kvCacheUsage = metrics.Vllm.For(VllmGauges.KvCacheUsage, model, version);
        _preemptions = metrics.Vllm.For(VllmGauges.Preemptions, model, version);
        _prefixQueries = metrics.Vllm.For(VllmGauges.PrefixCacheQueries, model, version);
        _prefixHits = metrics.Vllm.For(VllmGauges.PrefixCacheHits, model, version);
    }

    private readonly VllmGauges.Series _preemptions;
    private readonly VllmGauges.Series _prefixQueries;
    private readonly VllmGauges.Series _prefixHits;

    /// <summary>Counts sequences preempted (vLLM's num_preemptions).</summary>
    public void Preempted(int count) => _preemptions.Add(count);

    /// <summary>Counts prompt tokens looked up in the prefix cache and those found (vLLM's prefix_cache_queries and _hits).</summary>
    public void PrefixCacheLookups(long queries, long hits)
    {
        _prefixQueries.Add(queries);
        _prefixHits.Add(hits);
    }

    private readonly Gauge.Child _running;
    private readonly Gauge.Child _waiting;
    private readonly VllmGauges.Series _vllmRunning;
    private readonly VllmGauges.Series _vllmWaiting;
    private readonly VllmGauges.Series _kvCacheUsage;

    /// <summary>Sets the running-sequences gauges (ours and vLLM's name).</summary>
    public void SetRunning(int count)
    {
        _running.Set(count);
        _vllmRunning.Set(count);
    }

    /// <summary>Sets the waiting-requests gauges (ours and vLLM's name).</summary>
    public void SetWaiting(int count)
    {
        _waiting.Set(count);
        _vllmWaiting.Set(count);
    }

    /// <summary>Sets the fraction of a KV-cache decoder's cache reserved (vLLM's kv_cache_usage_perc).</summary>
    public void SetKvCacheUsage(double fraction) => _kvCacheUsage.Set(fraction);

    /// <summary>Prompt tokens counter.</summary>
    public Counter.Child PromptTokens { get; }

    /// <summary>Generated tokens counter.</summary>
    public Counter.Child GenerationTokens { get; }

    /// <summary>Time to first token, seconds.</summary>
    public Histogram.Child TimeToFirstToken { get; }

    /// <summary>Time per output token, seconds.</summary>
    public Histogram.Child TimePerOutputToken { get; }

    /// <summary>End-to-end latency, seconds.</summary>
    public Histogram.Child RequestLatency { get; }

    /// <summary>Prompt length histogram.</summary>
    public Histogram.Child RequestPromptTokens { get; }

    /// <summary>Generated length histogram.</summary>
    public Histogram.Child RequestGenerationTokens { get; }


    /// <summary>Counts one finished request by its finish reason.</summary>
    public void Finished(string reason) => _metrics.GenerationRequests.WithLabels(_labels[0], _labels[1], reason).Inc();
}

/// <summary>One model version's request metrics, fed by its <see cref="Statistics.ModelStatistics"/>.</summary>
public sealed class RequestMetrics
{
    /// <summary>Rejection reason: the model's queue (or waiting queue) was full.</summary>
    public const string QueueFull = "queue_full";

    /// <summary>Rejection reason: the deadline passed while the request was queued.</summary>
    public const string Deadline = "deadline";

    /// <summary>Rejection reason: the server was closing after a drain.</summary>
    public const string Drain = "drain";

    /// <summary>Rejection reason: a rate limit (admission control).</summary>
    public const string RateLimit = "rate_limit";

    /// <summary>Rejection reason: the model version's circuit breaker was open and no fallback served the request.</summary>
    public const string CircuitOpen = "circuit_open";

    /// <summary>Rejection reason: a model's concurrency limit and its wait queue were full (admission control).</summary>
    public const string Concurrency = "concurrency";

    private static readonly int StatusCount = Enum.GetValues<Inference.InferenceErrorKind>().Length + 1;
    private readonly ServerMetrics _metrics;
    private readonly string _model;
    private readonly string _version;
    private readonly Counter.Child?[] _failed = new Counter.Child?[StatusCount];

    internal RequestMetrics(ServerMetrics metrics, string model, string version)
    {
        _metrics = metrics;
        _model = model;
        _version = version;
        Succeeded = metrics.Requests.WithLabels(model, version, "success", Inference.InferenceStatus.Ok);
        RequestDuration = metrics.RequestDuration.WithLabels(model, version);
        QueueDuration = metrics.QueueDuration.WithLabels(model, version);
        ComputeDuration = metrics.ComputeDuration.WithLabels(model, version);
        BatchSize = metrics.BatchSize.WithLabels(model, version);
    }

    /// <summary>Successful requests.</summary>
    public Counter.Child Succeeded { get; }

    /// <summary>End-to-end duration of successful requests.</summary>
    public Histogram.Child RequestDuration { get; }

    /// <summary>Queue wait.</summary>
    public Histogram.Child QueueDuration { get; }

    /// <summary>Engine time per execution.</summary>
    public Histogram.Child ComputeDuration { get; }

    /// <summary>Batch size per execution.</summary>
    public Histogram.Child BatchSize { get; }

    /// <summary>
    /// Counts a failed request under its status (<paramref name="kind"/>; null: the client cancelled). A full queue or
    /// a deadline passed in the queue also counts as a rejection with that reason.
    /// </summary>
    public void Failed(Inference.InferenceErrorKind? kind)
    {
        var index = kind is { } k ? (int)k : StatusCount - 1;
        var child = _failed[index] ??= _metrics.Requests.WithLabels(_model, _version, "failure", Inference.InferenceStatus.Name(kind));
        child.Inc();
        if (kind == Inference.InferenceErrorKind.ResourceExhausted)
        {
            Rejected(QueueFull);
        }
        else if (kind == Inference.InferenceErrorKind.DeadlineExceeded)
        {
            Rejected(Deadline);
        }
    }

    /// <summary>Counts a request turned away before the engine, by reason.</summary>
    public void Rejected(string reason) => _metrics.Rejections.WithLabels(_model, _version, reason).Inc();
}

/// <summary>One model version's circuit breaker series: requests its fallback served, requests refused while open.</summary>
public sealed record CircuitBreakerMetrics(Counter.Child? FallbackServed, Counter.Child Rejected);

/// <summary>The GPU gauges (see <see cref="ServerMetrics.CreateGpuGauges"/>), refreshed from NVML at each scrape by <see cref="GpuMetrics"/>.</summary>
public sealed record GpuGauges(Gauge Utilization, Gauge MemoryUsed, Gauge MemoryTotal, Gauge Power, Gauge Temperature)
{
    /// <summary>The label of the GPU's NVML index.</summary>
    public const string GpuLabel = "gpu";

    /// <summary>The label of the GPU's UUID.</summary>
    public const string UuidLabel = "uuid";

    /// <summary>The label of the GPU's product name.</summary>
    public const string NameLabel = "name";
}
