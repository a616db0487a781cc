using System.Collections.Concurrent;
using System.Globalization;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Configuration.HuggingFace;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Lifecycle;
using InferenceServer.Observability;
using Microsoft.Extensions.Logging;

namespace InferenceServer.Repository;

/// <summary>One row of the repository index: a model version (or a model that was never loaded) and its state.</summary>
public sealed record ModelIndexEntry(string Name, string Version, string State, string Reason);

/// <summary>
/// The model repository: scans <c>&lt;repo&gt;/&lt;model&gt;/&lt;version&gt;/</c>, loads the versions each model's policy
/// selects, keeps their states, and hands requests a lease on a ready version. A model that fails to load is
/// UNAVAILABLE with its reason; the others keep serving.
/// </summary>
public sealed partial class ModelRepository : IDisposable
{
    private readonly ModelRepositoryOptions _options;
    private readonly IReadOnlyList<IModelBackend> _backends;
    private readonly ServerMetrics _metrics;
    private readonly ILogger<ModelRepository> _logger;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, ModelVersion[]> _models = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _modelLocks = new(StringComparer.Ordinal);

    /// <summary>Creates a repository over <see cref="ModelRepositoryOptions.Path"/>; nothing is loaded until <see cref="LoadStartupModelsAsync"/>.</summary>
    public ModelRepository(ModelRepositoryOptions options, IEnumerable<IModelBackend> backends, ILogger<ModelRepository> logger, ServerMetrics? metrics = null, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _metrics = metrics ?? new ServerMetrics();
        _metrics.Track(this);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backends);
        ArgumentNullException.ThrowIfNull(logger);
        _options = options;
        _backends = backends.ToArray();
        _logger = logger;
        RootPath = Path.GetFullPath(options.Path);
    }

    /// <summary>The repository directory (absolute).</summary>
    public string RootPath { get; }

    /// <summary>True once start-up loading has finished.</summary>
    public bool StartupComplete { get; private set; }

    /// <summary>Loads the start-up models: all of them, or in explicit mode those named in the options.</summary>
    public async Task LoadStartupModelsAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(RootPath))
        {
            Log.RepositoryMissing(_logger, RootPath);
            StartupComplete = true;
            return;
        }
        IEnumerable<string> names = ScanModelNames();
        if (_options.ModelControlMode == ModelControlMode.Explicit && !_options.StartupModels.Contains("*"))
        {
            names = _options.StartupModels;
        }
        await Parallel.ForEachAsync(
            names,
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, _options.LoadParallelism), CancellationToken = cancellationToken },
            async (name, ct) =>
            {
                try
                {
                    await LoadCoreAsync(name, ct).ConfigureAwait(false);
                }
                catch (InferenceException e)
                {
                    Log.StartupModelSkipped(_logger, name, e.Message);
                }
            }).ConfigureAwait(false);
        StartupComplete = true;
    }

    /// <summary>Loads (or reloads) a model through the API; explicit model control only.</summary>
    public Task LoadAsync(string name, CancellationToken cancellationToken)
    {
        RequireExplicitControl("load");
        return LoadCoreAsync(name, cancellationToken);
    }

    /// <summary>Unloads a model through the API; explicit model control only. Requests in flight finish first.</summary>
    public async Task UnloadAsync(string name, CancellationToken cancellationToken)
    {
        RequireExplicitControl("unload");
        ValidateName(name);
        var gate = _modelLocks.GetOrAdd(name, static _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_models.TryGetValue(name, out var versions))
            {
                throw InferenceException.NotFound($"model '{name}' is not loaded");
            }
            foreach (var v in versions)
            {
                v.Retire(ModelVersion.UnloadedReason);
            }
            Log.ModelUnloaded(_logger, name);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Takes a lease on the requested version of a model (empty: the highest ready version). Throws NotFound for an
    /// unknown model or version and Unavailable for one that is not ready.
    /// </summary>
    public ModelLease Acquire(string name, string version)
    {
        while (true)
        {
            var snapshot = _models.GetValueOrDefault(name);
            var selected = Select(name, version);
            if (selected.TryAcquire(out var runner))
            {
                return new ModelLease(selected, runner);
            }
            // A reload swapped the versions between the lookup and the lease: look again in the new set.
            if (ReferenceEquals(snapshot, _models.GetValueOrDefault(name)))
            {
                throw NotReady(selected);
            }
        }
    }

    /// <summary>The version a request names (empty: the highest ready one, else the highest), whatever its state.</summary>
    public ModelVersion Select(string name, string version)
    {
        if (!_models.TryGetValue(name, out var versions) || versions.All(v => v.IsUnloaded))
        {
            throw UnknownModel(name);
        }
        if (string.IsNullOrEmpty(version))
        {
            for (var i = versions.Length - 1; i >= 0; i--)
            {
                if (versions[i].State == ModelState.Ready)
                {
                    return versions[i];
                }
            }
            return versions[^1];
        }
        if (!long.TryParse(version, NumberStyles.None, CultureInfo.InvariantCulture, out var number))
        {
            throw InferenceException.NotFound($"model '{name}' has no version '{version}'");
        }
        foreach (var v in versions)
        {
            if (v.Version == number)
            {
                return v;
            }
        }
        throw InferenceException.NotFound($"model '{name}' has no version {number}");
    }

    /// <summary>NotFound for a model the repository does not hold, naming (up to ten of) the models it does, sorted.</summary>
    private InferenceException UnknownModel(string name)
    {
        const int Shown = 10;
        var known = _models.Where(kv => !kv.Value.All(v => v.IsUnloaded)).Select(kv => kv.Key).Order(StringComparer.Ordinal).ToArray();
        var models = known.Length == 0
            ? "no models are loaded"
            : "models: " + string.Join(", ", known.Take(Shown)) + (known.Length > Shown ? $" and {known.Length - Shown} more" : "");
        return InferenceException.NotFound($"unknown model '{name}' ({models})");
    }

    /// <summary>The ready version a request names, for metadata and configuration; throws like <see cref="Acquire"/>.</summary>
    public ModelVersion GetReady(string name, string version)
    {
        var selected = Select(name, version);
        return selected.State == ModelState.Ready ? selected : throw NotReady(selected);
    }

    /// <summary>Whether the named model version is ready; throws NotFound for an unknown one.</summary>
    public bool IsReady(string name, string version) => Select(name, version).State == ModelState.Ready;

    /// <summary>The ready versions of a model, ascending.</summary>
    public IReadOnlyList<long> ReadyVersions(string name) =>
        _models.TryGetValue(name, out var versions) ? versions.Where(v => v.State == ModelState.Ready).Select(v => v.Version).ToArray() : [];

    /// <summary>Every model version the repository holds (loaded, failed or unloaded), by name then version.</summary>
    public IEnumerable<ModelVersion> Versions(string? name = null) =>
        _models.Where(kv => name is null || kv.Key == name).OrderBy(kv => kv.Key, StringComparer.Ordinal).SelectMany(kv => kv.Value);

    /// <summary>Server readiness: with strict readiness, start-up is done and every model version that should be loaded is ready.</summary>
    public bool IsServerReady =>
        StartupComplete && (!_options.StrictReadiness || _models.Values.All(vs => vs.All(v => v.State == ModelState.Ready || v.IsUnloaded)));

    /// <summary>The repository index: every model directory, with the state of each version known.</summary>
    public IReadOnlyList<ModelIndexEntry> Index(bool readyOnly)
    {
        var rows = new List<ModelIndexEntry>();
        var names = new SortedSet<string>(ScanModelNames(), StringComparer.Ordinal);
        names.UnionWith(_models.Keys);
        foreach (var name in names)
        {
            if (_models.TryGetValue(name, out var versions))
            {
                foreach (var v in versions)
                {
                    if (!readyOnly || v.State == ModelState.Ready)
                    {
                        rows.Add(new ModelIndexEntry(name, v.Version > 0 ? v.Version.ToString(CultureInfo.InvariantCulture) : "", StateName(v.State), v.Reason));
                    }
                }
            }
            else if (!readyOnly)
            {
                rows.Add(new ModelIndexEntry(name, "", "", ""));
            }
        }
        return rows;
    }

    /// <summary>The index's name for a state.</summary>
    public static string StateName(ModelState state) => state switch
    {
        ModelState.Ready => "READY",
        ModelState.Loading => "LOADING",
        ModelState.Unloading => "UNLOADING",
        _ => "UNAVAILABLE",
    };

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var versions in _models.Values)
        {
            foreach (var v in versions)
            {
                v.Retire("server stopped");
            }
        }
        _models.Clear();
    }

    private async Task LoadCoreAsync(string name, CancellationToken cancellationToken)
    {
        ValidateName(name);
        var directory = Path.Combine(RootPath, name);
        if (!Directory.Exists(directory))
        {
            throw InferenceException.NotFound($"model '{name}' is not in the repository");
        }
        var gate = _modelLocks.GetOrAdd(name, static _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        ModelVersion[]? announced = null;
        try
        {
            _models.TryGetValue(name, out var previous);
            // A first load (or that of a model serving nothing) shows its versions LOADING in the index and the probes
            // while the instances load and warm up; a reload leaves the serving versions in place until it is done.
            void Announce(ModelVersion[] loading)
            {
                if (previous is null || previous.All(v => v.State != ModelState.Ready))
                {
                    _models[name] = announced = loading;
                }
            }
            // The engine's load is synchronous and may take seconds; keep it off the caller's thread.
            var loaded = await Task.Run(() => LoadVersions(name, directory, Announce, cancellationToken), cancellationToken).ConfigureAwait(false);
            announced = null;
            if (loaded.All(v => v.State != ModelState.Ready) && previous is not null && previous.Any(v => v.State == ModelState.Ready))
            {
                // As Triton does: a reload that fails leaves the versions that were serving in place.
                throw InferenceException.Unavailable(
                    $"model '{name}' failed to reload; the loaded versions keep serving: {string.Join("; ", loaded.Select(v => v.Reason).Distinct())}");
            }
            _models[name] = loaded;
            // Requests already holding a lease on an old version finish on it; its engine is released after them.
            foreach (var v in previous ?? [])
            {
                v.Retire("reloaded");
            }
        }
        finally
        {
            // The load was cancelled (the server is stopping) or failed unexpectedly: nothing is loading any more.
            if (announced is not null)
            {
                ((ICollection<KeyValuePair<string, ModelVersion[]>>)_models).Remove(new(name, announced));
            }
            gate.Release();
        }
    }

    private ModelVersion[] LoadVersions(string name, string directory, Action<ModelVersion[]> announce, CancellationToken cancellationToken)
    {
        ConfiguredModel configured;
        VersionPolicy policy;
        try
        {
            configured = ConfiguredModel.Read(directory);
            if (configured.Values.Name is { } configuredName && configuredName != name)
            {
                throw new ModelConfigException($"config name '{configuredName}' does not match the directory name '{name}'");
            }
            policy = configured.Values.ResolveVersionPolicy();
            CircuitBreakerOptions.Resolve(configured.Values.CircuitBreaker, name);
        }
        catch (ModelConfigException e)
        {
            Log.ModelFailed(_logger, name, 0, e.Message);
            return [ModelVersion.Failed(name, 0, "invalid configuration: " + e.Message)];
        }

        var available = Directory.EnumerateDirectories(directory)
            .Select(d => long.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : 0)
            .Where(v => v > 0)
            .ToArray();
        var selected = policy.Select(available);
        if (selected.Count == 0)
        {
            const string reason = "no version directory matches the version policy";
            Log.ModelFailed(_logger, name, 0, reason);
            return [ModelVersion.Failed(name, 0, reason)];
        }
        var loading = selected.Select(v => ModelVersion.Loading(name, v)).ToArray();
        announce(loading);
        return selected.Select((v, i) => LoadVersion(name, directory, v, configured, loading[i], cancellationToken)).ToArray();
    }

    private ModelVersion LoadVersion(string name, string directory, long version, ConfiguredModel configured, ModelVersion loading, CancellationToken cancellationToken)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var warmup = TimeSpan.Zero;
        var loaded = LoadVersionCore(name, directory, version, configured, loading, ref warmup, cancellationToken);
        // Two gauges: the engine's load, and the warmup after it.
        loaded.LoadDuration = System.Diagnostics.Stopwatch.GetElapsedTime(started) - warmup;
        loaded.WarmupDuration = warmup;
        return loaded;
    }

    private ModelVersion LoadVersionCore(
        string name, string directory, long version, ConfiguredModel configured, ModelVersion loading, ref TimeSpan warmupDuration, CancellationToken cancellationToken)
    {
        var instances = new List<IBackendModel>();
        var versionDirectory = Path.Combine(directory, version.ToString(CultureInfo.InvariantCulture));
        try
        {
            // config.yaml is the model's; a Hugging Face export's files are the version's, merged beneath it for this version only.
            configured = configured.WithFormatLayers(HuggingFaceFiles.Read(versionDirectory, directory));
            var file = configured.Values;
            var backend = SelectBackend(file, versionDirectory);
            var fileName = file.DefaultModelFilename ?? FindModelFile(backend, versionDirectory, version);
            if (!ModelNames.IsValidModelFile(fileName))
            {
                throw new ModelConfigException(
                    $"default_model_filename '{fileName}' must name a file in the version directory or in one folder below it (model.onnx, onnx/model_fp16.onnx): no absolute path, '\\' or '..'");
            }
            var devices = file.ResolveInstanceDevices(_options.DefaultDevice);
            var parameters = InstanceParameters(file.Parameters, devices);
            var path = Path.Combine(versionDirectory, fileName);
            foreach (var device in devices)
            {
                instances.Add(backend.Load(new BackendLoadRequest(name, version, path, device, file.AllowCpuFallback ?? false, parameters)
                {
                    DeclaredInputs = WithBatchDimension(ModelConfigFile.ResolveTensors(file.Input, "input"), file.MaxBatchSize),
                    DeclaredOutputs = WithBatchDimension(ModelConfigFile.ResolveTensors(file.Output, "output"), file.MaxBatchSize),
                }));
            }
            var identity = new BackendIdentity(backend.Name, backend.Platform, backend.DefaultModelFilename)
            {
                FoundModelFilename = file.DefaultModelFilename is null && fileName != backend.DefaultModelFilename ? fileName : null,
            };
            var config = ModelConfigResolver.Resolve(
                name, configured, identity, instances[0].Signature,
                instances[0].ExecutionProvider, devices, new ConfigDefaults(_options.DefaultMaxBatchSize, _options.DefaultMaxQueueSize));
            var generation = config.Generation is { } settings ? GenerationModel.Create(settings, directory) : null;
            Log.ModelLoaded(_logger, name, version, instances.Count, instances[0].ExecutionProvider);
            ModelWarmup warmup;
            try
            {
                warmup = ModelWarmup.Resolve(file.ModelWarmup, config, directory, generation?.Tokenizer.VocabularySize);
            }
            catch (ModelConfigException e)
            {
                throw new ModelConfigException("invalid configuration: " + e.Message);
            }
            if (warmup.Samples.Count > 0)
            {
                loading.SetLoadingPhase(ModelVersion.WarmingUpReason);
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                try
                {
                    warmup.Run(instances, cancellationToken);
                }
                finally
                {
                    warmupDuration = System.Diagnostics.Stopwatch.GetElapsedTime(started);
                }
                Log.ModelWarmedUp(_logger, name, version, warmup.Samples.Count, warmup.ExecutionsPerInstance * instances.Count, warmupDuration.TotalSeconds);
            }
            return ModelVersion.Ready(name, version, config, instances, _metrics, generation, CreateBreaker(name, version, config));
        }
        catch (Exception e) when (e is ModelLoadException or ModelConfigException or WarmupException)
        {
            instances.ForEach(i => i.Dispose());
            Log.ModelFailed(_logger, name, version, e.Message);
            return ModelVersion.Failed(name, version, e.Message);
        }
        catch (OperationCanceledException)
        {
            instances.ForEach(i => i.Dispose());
            throw;
        }
    }

    private Admission.CircuitBreaker? CreateBreaker(string name, long version, ModelConfig config)
    {
        if (config.CircuitBreaker is not { } options)
        {
            return null;
        }
        var label = version.ToString(CultureInfo.InvariantCulture);
        return new Admission.CircuitBreaker(options, name, label, _time, _logger, _metrics.ForCircuitBreaker(name, label, options.FallbackModel));
    }

    /// <summary>
    /// Backend parameters for each instance: unless the configuration sets intra_op_num_threads, the CPU instances
    /// share the machine's cores (instances x threads = cores), so concurrent instances do not oversubscribe it.
    /// </summary>
    private static Dictionary<string, string> InstanceParameters(Dictionary<string, string>? configured, IReadOnlyList<string> devices)
    {
        var parameters = new Dictionary<string, string>(configured ?? [], StringComparer.Ordinal);
        if (!parameters.ContainsKey("intra_op_num_threads"))
        {
            var cpuInstances = devices.Count(d => d == "cpu");
            if (cpuInstances > 1)
            {
                parameters["intra_op_num_threads"] = Math.Max(1, Environment.ProcessorCount / cpuInstances).ToString(CultureInfo.InvariantCulture);
            }
        }
        return parameters;
    }

    private static List<TensorConfig> WithBatchDimension(List<TensorConfig> declared, int? maxBatchSize) =>
        maxBatchSize > 0 ? declared.Select(t => t with { Dims = [-1, .. t.Dims] }).ToList() : declared;

    /// <summary>
    /// The configuration's backend or platform; when it names neither, the backend whose model file the version directory
    /// holds (model.onnx or another of <see cref="OptimumModelFiles.Onnx"/>, model.pt), as Triton does; else the first backend.
    /// </summary>
    private IModelBackend SelectBackend(ModelConfigFile file, string versionDirectory)
    {
        var wanted = file.Backend;
        if (wanted is null && file.Platform is null)
        {
            var byFile = file.DefaultModelFilename is { } named
                ? _backends.FirstOrDefault(b => string.Equals(Path.GetExtension(named), Path.GetExtension(b.DefaultModelFilename), StringComparison.OrdinalIgnoreCase))
                : _backends.FirstOrDefault(b => OptimumModelFiles.For(b.DefaultModelFilename).Any(f => File.Exists(Path.Combine(versionDirectory, f))));
            if (byFile is not null)
            {
                return byFile;
            }
        }
        if (wanted is null && file.Platform is { } platform)
        {
            return _backends.FirstOrDefault(b => b.Platform == platform)
                ?? throw new ModelConfigException($"platform '{platform}' is not supported (supported: {string.Join(", ", _backends.Select(b => b.Platform))})");
        }
        wanted ??= _backends[0].Name;
        return _backends.FirstOrDefault(b => b.Name == wanted)
            ?? throw new ModelConfigException($"backend '{wanted}' is not supported (supported: {string.Join(", ", _backends.Select(b => b.Name))})");
    }

    /// <summary>
    /// The model file of a version whose configuration names none: the first of the backend's candidates
    /// (<see cref="OptimumModelFiles.For"/>) the version directory holds. When it holds none, a backend with one candidate
    /// gets it (and reports it missing itself); with several, the reason lists them.
    /// </summary>
    private static string FindModelFile(IModelBackend backend, string versionDirectory, long version)
    {
        var candidates = OptimumModelFiles.For(backend.DefaultModelFilename);
        foreach (var candidate in candidates)
        {
            if (File.Exists(Path.Combine(versionDirectory, candidate)))
            {
                return candidate;
            }
        }
        return candidates.Count == 1
            ? candidates[0]
            : throw new ModelLoadException($"no model file found in version {version} (looked for {string.Join(", ", candidates)}; set default_model_filename to load another)");
    }

    private IEnumerable<string> ScanModelNames() =>
        Directory.Exists(RootPath)
            ? Directory.EnumerateDirectories(RootPath).Select(Path.GetFileName).OfType<string>().Where(n => ModelNames.IsValid(n))
            : [];

    private void RequireExplicitControl(string operation)
    {
        if (_options.ModelControlMode != ModelControlMode.Explicit)
        {
            throw new InferenceException(
                InferenceErrorKind.FailedPrecondition,
                $"explicit model {operation} is not allowed: the server was not started with --model-control-mode explicit");
        }
    }

    private static void ValidateName(string name)
    {
        if (!ModelNames.IsValid(name))
        {
            throw InferenceException.InvalidArgument($"'{name}' is not a valid model name (letters, digits, '_', '-', '.'; no path separators)");
        }
    }

    private static InferenceException NotReady(ModelVersion version)
    {
        var what = version.Version > 0 ? $"model '{version.Name}' version {version.Version}" : $"model '{version.Name}'";
        return version.IsUnloaded
            ? InferenceException.NotFound($"{what} is not loaded")
            : InferenceException.Unavailable($"{what} is not ready: {version.Reason}");
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Model repository '{Path}' does not exist; serving no models")]
        public static partial void RepositoryMissing(ILogger logger, string path);

        [LoggerMessage(2, LogLevel.Information, "Loaded model '{Name}' version {Version}: {Instances} instance(s) on {Provider}")]
        public static partial void ModelLoaded(ILogger logger, string name, long version, int instances, string provider);

        [LoggerMessage(3, LogLevel.Error, "Model '{Name}' version {Version} is UNAVAILABLE: {Reason}")]
        public static partial void ModelFailed(ILogger logger, string name, long version, string reason);

        [LoggerMessage(4, LogLevel.Information, "Unloaded model '{Name}'")]
        public static partial void ModelUnloaded(ILogger logger, string name);

        [LoggerMessage(5, LogLevel.Warning, "Start-up model '{Name}' skipped: {Reason}")]
        public static partial void StartupModelSkipped(ILogger logger, string name, string reason);

        [LoggerMessage(6, LogLevel.Information, "Warmed up model '{Name}' version {Version}: {Samples} sample(s), {Executions} execution(s) in {Seconds:F3} s")]
        public static partial void ModelWarmedUp(ILogger logger, string name, long version, int samples, int executions, double seconds);
    }
}
