using System.Diagnostics;
using InferenceServer.Inference;

namespace InferenceServer.Scheduling;

/// <summary>
/// A model's bounded queue with priority levels (level 0 first, FIFO within a level). Instances wait on it for the
/// next batch; a full queue rejects at once rather than growing.
/// </summary>
internal sealed class RequestQueue
{
    private static readonly TimeSpan MaxWait = TimeSpan.FromDays(1);
    private readonly object _gate = new();
    private readonly LinkedList<PendingRequest>[] _levels;
    private readonly int _capacity;
    private int _count;
    private bool _stopped;

    public RequestQueue(int levels, int capacity)
    {
        _levels = Enumerable.Range(0, levels).Select(_ => new LinkedList<PendingRequest>()).ToArray();
        _capacity = capacity;
    }

    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _count;
            }
        }
    }

    /// <summary>Adds a request, or throws RESOURCE_EXHAUSTED when the queue is full.</summary>
    public void Enqueue(PendingRequest request)
    {
        lock (_gate)
        {
            if (_stopped)
            {
                throw InferenceException.Unavailable("the model is being unloaded");
            }
            if (_count >= _capacity)
            {
                throw new InferenceException(InferenceErrorKind.ResourceExhausted, $"the model's queue is full ({_capacity} requests waiting); retry later")
                {
                    RetryAfter = TimeSpan.FromSeconds(1),
                };
            }
            request.Node = _levels[request.Level].AddLast(request);
            _count++;
            Monitor.Pulse(_gate);
        }
    }

    /// <summary>Unlinks an abandoned request (deadline or cancellation) and answers it.</summary>
    public void Abandon(PendingRequest request, Exception error)
    {
        lock (_gate)
        {
            if (!request.TryAbandon(error))
            {
                return;
            }
            if (request.Node?.List is not null)
            {
                request.Node.List.Remove(request.Node);
                _count--;
            }
        }
    }

    /// <summary>
    /// Blocks until a batch can be dispatched and returns it (null once stopped). <paramref name="policy"/> decides,
    /// under the queue's lock, how many of the compatible waiting requests to take and whether to wait for more.
    /// </summary>
    public List<PendingRequest>? TakeBatch(BatchPolicy policy)
    {
        var candidates = new List<PendingRequest>();
        lock (_gate)
        {
            while (true)
            {
                if (_stopped)
                {
                    return null;
                }
                var first = FirstQueued();
                if (first is null)
                {
                    Monitor.Wait(_gate);
                    continue;
                }
                candidates.Clear();
                candidates.Add(first);
                if (policy.Batching)
                {
                    CollectCompatible(first, candidates, policy.MaxBatchSize);
                }
                var take = policy.Choose(candidates, first.Enqueued, out var waitUntil);
                if (take == 0)
                {
                    var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), waitUntil);
                    if (remaining > TimeSpan.Zero)
                    {
                        // Monitor.Wait takes at most int.MaxValue ms (about 24.8 days): a longer delay is waited out in steps.
                        Monitor.Wait(_gate, remaining < MaxWait ? remaining : MaxWait);
                    }
                    continue;
                }
                var batch = new List<PendingRequest>(take);
                foreach (var request in candidates.Take(take))
                {
                    request.Node!.List!.Remove(request.Node);
                    _count--;
                    if (request.TryTake())
                    {
                        batch.Add(request);
                    }
                }
                if (batch.Count > 0)
                {
                    return batch;
                }
            }
        }
    }

    /// <summary>Wakes every waiting instance and refuses new requests.</summary>
    public void Stop()
    {
        lock (_gate)
        {
            _stopped = true;
            Monitor.PulseAll(_gate);
        }
    }

    private PendingRequest? FirstQueued()
    {
        foreach (var level in _levels)
        {
            if (level.First is { } node)
            {
                return node.Value;
            }
        }
        return null;
    }

    /// <summary>
    /// Queued requests, in priority then arrival order, that can share a batch with <paramref name="first"/>; the scan
    /// stops one request past <paramref name="maxRows"/>, which is enough to know the batch is full.
    /// </summary>
    private void CollectCompatible(PendingRequest first, List<PendingRequest> candidates, long maxRows)
    {
        var rows = first.BatchSize;
        foreach (var level in _levels)
        {
            for (var node = level.First; node is not null; node = node.Next)
            {
                if (node.Value != first && BatchAssembler.CanShareBatch(first.Request, node.Value.Request))
                {
                    candidates.Add(node.Value);
                    rows += node.Value.BatchSize;
                    if (rows > maxRows)
                    {
                        return;
                    }
                }
            }
        }
    }
}
