using InferenceServer.Observability;
using InferenceServer.Repository;

namespace InferenceServer.Lifecycle;

/// <summary>Where the server is in its shutdown: serving, draining (still accepting), or closing (no longer accepting).</summary>
public enum DrainPhase
{
    /// <summary>Serving normally.</summary>
    Serving = 0,

    /// <summary>Shutdown began: readiness fails, new requests are still served, connections are asked to close.</summary>
    Draining = 1,

    /// <summary>The listeners are closed: accepted requests finish, new ones on open connections get 503 / UNAVAILABLE.</summary>
    Closing = 2,
}

/// <summary>
/// The server's readiness as the probes and the protocols report it: the repository's model states, and not ready at all
/// from the moment a drain begins (the endpoint is being removed from the mesh's load balancing).
/// </summary>
public sealed class ServerLifecycle
{
    private readonly ModelRepository _repository;
    private readonly ServerMetrics _metrics;
    private int _phase;

    /// <summary>Creates the lifecycle of a server over <paramref name="repository"/>.</summary>
    public ServerLifecycle(ModelRepository repository, ServerMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(repository);
        ArgumentNullException.ThrowIfNull(metrics);
        _repository = repository;
        _metrics = metrics;
        _metrics.DrainPhase.Set((int)DrainPhase.Serving);
    }

    /// <summary>The current phase.</summary>
    public DrainPhase Phase => (DrainPhase)Volatile.Read(ref _phase);

    /// <summary>True from the start of a drain.</summary>
    public bool IsDraining => Volatile.Read(ref _phase) != (int)DrainPhase.Serving;

    /// <summary>Server readiness: not draining, and the repository is ready (start-up over; with strict readiness, every model ready).</summary>
    public bool IsReady => !IsDraining && _repository.IsServerReady;

    /// <summary>Model readiness: not draining, and the version is ready. Throws NotFound for an unknown model or version.</summary>
    public bool IsModelReady(string name, string version) => _repository.IsReady(name, version) && !IsDraining;

    /// <summary>Enters <see cref="DrainPhase.Draining"/>; false when a drain had already begun.</summary>
    public bool BeginDrain() => Advance(DrainPhase.Draining);

    /// <summary>Enters <see cref="DrainPhase.Closing"/>; false when already closing.</summary>
    public bool Close() => Advance(DrainPhase.Closing);

    private bool Advance(DrainPhase to)
    {
        while (true)
        {
            var current = Volatile.Read(ref _phase);
            if (current >= (int)to)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _phase, (int)to, current) == current)
            {
                _metrics.DrainPhase.Set((int)to);
                return true;
            }
        }
    }
}
