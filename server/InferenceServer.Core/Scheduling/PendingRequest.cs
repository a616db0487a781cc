using System.Diagnostics;
using InferenceServer.Inference;

namespace InferenceServer.Scheduling;

/// <summary>
/// A request waiting in a model's queue. It leaves the queue exactly once: taken by an instance for execution, or
/// abandoned because its deadline passed or its client cancelled (then answered at once, never reaching the engine).
/// </summary>
internal sealed class PendingRequest
{
    private const int Queued = 0, Taken = 1, Abandoned = 2;
    private int _state;
    private CancellationTokenRegistration _cancellation;
    private Timer? _deadlineTimer;
    private static readonly TimeSpan MaxTimerDue = TimeSpan.FromDays(30);

    public PendingRequest(InferenceRequest request, long batchSize, int level, long deadline)
    {
        Request = request;
        BatchSize = batchSize;
        Level = level;
        Deadline = deadline;
        Enqueued = Stopwatch.GetTimestamp();
    }

    public InferenceRequest Request { get; }

    /// <summary>Rows this request brings to a batch (1 for a model without a batch dimension).</summary>
    public long BatchSize { get; }

    /// <summary>Priority level index, 0 = highest.</summary>
    public int Level { get; }

    /// <summary>Stopwatch timestamp after which the request is dropped unanswered by the engine; 0 = none.</summary>
    public long Deadline { get; }

    public long Enqueued { get; }

    public TaskCompletionSource<InferenceResponse> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The queue's list node, so an abandoned request is unlinked at once.</summary>
    public LinkedListNode<PendingRequest>? Node { get; set; }

    public bool IsQueued => Volatile.Read(ref _state) == Queued;

    /// <summary>Arms the deadline timer and the client's cancellation; either abandons the request while it is queued.</summary>
    public void Watch(CancellationToken cancellationToken, Action<PendingRequest, Exception> abandon)
    {
        if (cancellationToken.CanBeCanceled)
        {
            _cancellation = cancellationToken.Register(
                static state =>
                {
                    var (self, abandon, token) = ((PendingRequest, Action<PendingRequest, Exception>, CancellationToken))state!;
                    // A call cancelled at or after its deadline (gRPC cancels the call when its deadline passes) is the deadline's doing.
                    abandon(self, self.Deadline > 0 && Stopwatch.GetTimestamp() >= self.Deadline
                        ? DeadlineExceeded()
                        : new OperationCanceledException("the client cancelled the request", token));
                },
                (this, abandon, cancellationToken));
        }
        // A timer waits at most about 49 days; a deadline further out than that is, for a queue, no deadline.
        if (Deadline > 0 && Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), Deadline) is var due && due < MaxTimerDue)
        {
            _deadlineTimer = new Timer(
                static state =>
                {
                    var (self, abandon) = ((PendingRequest, Action<PendingRequest, Exception>))state!;
                    abandon(self, DeadlineExceeded());
                },
                (this, abandon),
                due > TimeSpan.Zero ? due : TimeSpan.Zero,
                Timeout.InfiniteTimeSpan);
        }
    }

    private static InferenceException DeadlineExceeded() =>
        new(InferenceErrorKind.DeadlineExceeded, "the request's deadline passed while it was queued");

    /// <summary>Claims the request for execution; false when it was abandoned first.</summary>
    public bool TryTake()
    {
        if (Interlocked.CompareExchange(ref _state, Taken, Queued) != Queued)
        {
            return false;
        }
        Unwatch();
        return true;
    }

    /// <summary>Claims the request to answer it with <paramref name="error"/> without executing it; false when already taken.</summary>
    public bool TryAbandon(Exception error)
    {
        if (Interlocked.CompareExchange(ref _state, Abandoned, Queued) != Queued)
        {
            return false;
        }
        Unwatch();
        Completion.TrySetException(error);
        return true;
    }

    private void Unwatch()
    {
        // Unregister, not Dispose: Dispose would wait for a callback running on another thread, which may be
        // waiting for the queue's lock that our caller holds.
        _cancellation.Unregister();
        _deadlineTimer?.Dispose();
    }
}
