using System.Runtime.InteropServices;

namespace InferenceServer.Lifecycle;

/// <summary>
/// The host lifetime: SIGTERM, SIGINT (Ctrl+C) and SIGQUIT start a graceful drain instead of stopping at once, as
/// ASP.NET Core's console lifetime would. A second signal during the drain delay ends the delay.
/// </summary>
internal sealed class SignalLifetime(DrainCoordinator drain) : IHostLifetime, IDisposable
{
    private readonly List<PosixSignalRegistration> _registrations = [];

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        foreach (var signal in new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT })
        {
            _registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }
        _registrations.Clear();
    }

    private void OnSignal(PosixSignalContext context)
    {
        // Cancel the default (terminate the process); the drain stops the host when it is done.
        context.Cancel = true;
        if (!drain.BeginDrain())
        {
            drain.SkipDelay();
        }
    }
}
