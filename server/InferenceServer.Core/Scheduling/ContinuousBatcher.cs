using System.Diagnostics;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Observability;
using InferenceServer.Repository;
using InferenceServer.Statistics;

namespace InferenceServer.Scheduling;

/// <summary>
/// The iteration-level scheduler of a generative model (vLLM's scheduler): each engine instance has a thread that, at
/// every decode step, steps all of its running sequences together as one batch. Waiting requests join between steps
/// (first come, first served) up to <see cref="GenerationSettings.MaxRunningSequences"/> and as the decoder's memory
/// admits them; finished and cancelled ones leave; every running sequence gets one token per step, so progress is fair
/// (a joining one gets its first token once its prompt is read, over as many steps as the decoder's token budget takes).
/// A sequence the decoder preempts for memory goes back to the head of the queue and is computed again when it is
/// admitted again: no admitted request fails for memory. The waiting queue is bounded: beyond
/// <see cref="GenerationSettings.MaxWaitingSequences"/> a request is refused at once (429 / RESOURCE_EXHAUSTED).
/// </summary>
internal sealed class ContinuousBatcher : IModelRunner
{
    private readonly ModelConfig _config;
    private readonly GenerationModel _generation;
    private readonly ModelStatistics _statistics;
    private readonly GenerationMetrics _metrics;
    private readonly IReadOnlyList<IBackendModel> _instances;
    private readonly LinkedList<GeneratingSequence> _waiting = new();
    private readonly Thread[] _threads;
    private readonly int[] _largestSteps;
    private readonly IDecoder[] _decoders;
    private int _running;
    private bool _stopping;

    /// <summary>Starts one decode loop per engine instance.</summary>
    public ContinuousBatcher(ModelConfig config, string version, GenerationModel generation, IReadOnlyList<IBackendModel> instances, ModelStatistics statistics, GenerationMetrics metrics)
    {
        _config = config;
        _generation = generation;
        _statistics = statistics;
        _metrics = metrics;
        _instances = instances;
        _threads = new Thread[instances.Count];
        _largestSteps = new int[instances.Count];
        _decoders = new IDecoder[instances.Count];
        for (var i = 0; i < instances.Count; i++)
        {
            // Each instance's loop has its own decoder, and a KV-cache decoder its own cache.
            IDecoder decoder = generation.KvCache is { } plan
                ? new KvCacheDecoder(instances[i], generation.Settings, plan)
                : new WindowDecoder(instances[i], generation.Settings);
            _decoders[i] = decoder;
            var instance = i;
            _threads[i] = new Thread(() =>
            {
                try
                {
                    Loop(decoder, instance);
                }
                finally
                {
                    decoder.Dispose();
                }
            }) { IsBackground = true, Name = $"generate {config.Name}:{version} #{i}" };
            _threads[i].Start();
        }
    }

    /// <summary>Requests waiting for a running slot.</summary>
    public int WaitingCount
    {
        get
        {
            lock (_waiting)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Sequences currently in a batch, over every instance.</summary>
    public int RunningCount => Volatile.Read(ref _running);

    /// <inheritdoc />
    int IModelRunner.QueueLength => WaitingCount;

    /// <inheritdoc />
    int IModelRunner.Executing => RunningCount;

    /// <summary>A generative model's tensor form (text_input) is turned into a generation before it gets here.</summary>
    Task<InferenceResponse> IModelRunner.InferAsync(InferenceRequest request, long batchSize, CancellationToken cancellationToken) =>
        throw InferenceException.InvalidArgument($"model '{_config.Name}' is a generative model: send text_input, or use the generate or OpenAI endpoints");

    /// <summary>Test hook: the largest batch a step has had so far, over every instance.</summary>
    public int LargestStep => _largestSteps.Max();

    /// <summary>Test hook: the largest batch each instance's steps have had so far.</summary>
    public IReadOnlyList<int> LargestSteps => _largestSteps;

    /// <summary>
    /// Queues a request whose prompt is already tokenized; its text arrives on the returned sequence's chunks. The
    /// sequence owns <paramref name="lease"/> and <paramref name="activity"/> once this returns. Throws
    /// ResourceExhausted when the waiting queue is full.
    /// </summary>
    public GeneratingSequence Generate(
        List<int> promptTokens, GenerationRequest request, int maxTokens, Activity? activity, IDisposable lease, CancellationToken cancellationToken)
    {
        var longest = _decoders[0].MaxSequenceTokens;
        if ((long)promptTokens.Count + maxTokens > longest)
        {
            throw InferenceException.InvalidArgument(
                $"the request needs {promptTokens.Count + maxTokens} tokens of KV cache ({promptTokens.Count} in the prompt, {maxTokens} in the completion) but model '{_config.Name}' can give one sequence at most {longest} (generation.kv_cache_bytes {_generation.Settings.KvCacheBytes} per instance); reduce the prompt or max_tokens");
        }
        var sequence = new GeneratingSequence(promptTokens, request, maxTokens, _generation, _metrics, activity, lease);
        Enqueue(sequence);
        // Registered after queueing: a token already cancelled takes the sequence out at once.
        sequence.WatchCancellation(cancellationToken, this);
        return sequence;
    }

    /// <summary>
    /// The client of <paramref name="sequence"/> went away: a waiting sequence leaves the queue now (its place is
    /// free for the next request); a running one is dropped by its loop before the next step.
    /// </summary>
    internal void Cancel(GeneratingSequence sequence)
    {
        sequence.Cancel();
        lock (_waiting)
        {
            if (sequence.WaitingNode?.List is null)
            {
                return;
            }
            _waiting.Remove(sequence.WaitingNode);
            sequence.WaitingNode = null;
            _metrics.SetWaiting(_waiting.Count);
        }
        // Outside the lock: ending the sequence releases its lease, which may dispose this batcher.
        Drop(sequence, Stopwatch.GetTimestamp());
    }

    private void Enqueue(GeneratingSequence sequence)
    {
        lock (_waiting)
        {
            if (_stopping)
            {
                throw InferenceException.Unavailable($"model '{_config.Name}' is being unloaded");
            }
            if (_waiting.Count >= _generation.Settings.MaxWaitingSequences)
            {
                throw new InferenceException(InferenceErrorKind.ResourceExhausted,
                    $"model '{_config.Name}' has {_generation.Settings.MaxWaitingSequences} generation requests waiting for a slot (max_waiting_sequences); retry later")
                {
                    RetryAfter = TimeSpan.FromSeconds(1),
                };
            }
            sequence.WaitingNode = _waiting.AddLast(sequence);
            _metrics.SetWaiting(_waiting.Count);
            Monitor.PulseAll(_waiting);
        }
    }

    /// <summary>Ends a sequence whose client left (or that the unload cut); it counts as a failed request, as a tensor request cancelled in the queue does.</summary>
    private void Drop(GeneratingSequence sequence, long now)
    {
        _statistics.RecordFailure(now - sequence.ArrivalTimestamp, (Inference.InferenceErrorKind?)null);
        sequence.CompleteCancelled(now);
    }

    /// <summary>Ends a sequence whose deadline passed: 504 / DEADLINE_EXCEEDED (an error event on a stream under way).</summary>
    private void Expire(GeneratingSequence sequence, long now, string what)
    {
        _statistics.RecordFailure(now - sequence.ArrivalTimestamp, InferenceErrorKind.DeadlineExceeded);
        sequence.Fail(new InferenceException(InferenceErrorKind.DeadlineExceeded, $"the generation for model '{_config.Name}' {what} (the request's timeout, or the server's generation timeout)"), now);
    }

    private void Loop(IDecoder decoder, int instance)
    {
        var width = _generation.Settings.LogitsWidth;
        var vocabulary = _generation.Tokenizer.VocabularySize;
        var capacity = _generation.Settings.MaxRunningSequences;
        var running = new List<GeneratingSequence>(capacity);
        var batch = new List<DecoderSequence>(capacity);
        var logits = new float[capacity * width];
        var scratch = new float[width];
        var expired = new List<GeneratingSequence>();
        long prefixQueries = 0, prefixHits = 0;
        while (true)
        {
            lock (_waiting)
            {
                while (running.Count == 0 && _waiting.Count == 0 && !_stopping)
                {
                    Monitor.Wait(_waiting);
                }
                if (_stopping && running.Count == 0 && _waiting.Count == 0)
                {
                    return;
                }
                // With several instances, each takes its fair share of the work in flight, so that their decode
                // loops run batches of similar size instead of one instance taking everything.
                var share = _threads.Length == 1
                    ? capacity
                    : Math.Min(capacity, (Volatile.Read(ref _running) + _waiting.Count + _threads.Length - 1) / _threads.Length);
                // Requests waiting past their deadline leave the queue (answered after the lock).
                var checkedAt = Stopwatch.GetTimestamp();
                for (var node = _waiting.First; node is not null;)
                {
                    var next = node.Next;
                    if (node.Value.Expired(checkedAt))
                    {
                        _waiting.Remove(node);
                        node.Value.WaitingNode = null;
                        expired.Add(node.Value);
                    }
                    node = next;
                }
                // First come, first served: a sequence whose cache does not fit yet waits at the head for memory.
                while (running.Count < share && _waiting.First is { } first && decoder.TryReserve(first.Value))
                {
                    var next = first.Value;
                    _waiting.RemoveFirst();
                    next.WaitingNode = null;
                    running.Add(next);
                    Interlocked.Increment(ref _running);
                }
                _metrics.SetWaiting(_waiting.Count);
            }
            var now = Stopwatch.GetTimestamp();
            foreach (var sequence in expired)
            {
                Expire(sequence, now, "waited in the queue past its deadline");
            }
            expired.Clear();
            for (var i = running.Count - 1; i >= 0; i--)
            {
                if (running[i].IsCancelled || _stopping)
                {
                    Drop(running[i], now);
                    running.RemoveAt(i);
                    Interlocked.Decrement(ref _running);
                }
                else if (running[i].Expired(now))
                {
                    // Ended with a deadline error; its KV memory is freed before the next step.
                    Expire(running[i], now, $"ran past its deadline after {running[i].CompletionTokens} generated token(s)");
                    running.RemoveAt(i);
                    Interlocked.Decrement(ref _running);
                }
            }
            _metrics.SetRunning(RunningCount);
            SetCacheUsage();
            if (running.Count == 0)
            {
                continue;
            }

            batch.Clear();
            batch.AddRange(running);
            var timings = default(ExecutionTimings);
            try
            {
                decoder.Step(batch, logits, ref timings);
            }
            catch (Exception e)
            {
                // The engine's failure, whatever it says of its inputs: the server built them from a validated prompt
                // (a 500 that counts against the circuit breaker, not the client's 400).
                var error = e is InferenceException { Kind: InferenceErrorKind.Internal } engine
                    ? engine
                    : new InferenceException(InferenceErrorKind.Internal, "model execution failed: " + e.Message, e);
                now = Stopwatch.GetTimestamp();
                foreach (var sequence in running)
                {
                    _statistics.RecordFailure(now - sequence.ArrivalTimestamp, error.Kind);
                    sequence.Fail(error, now);
                }
                Interlocked.Add(ref _running, -running.Count);
                running.Clear();
                _metrics.SetRunning(RunningCount);
                continue;
            }
            _statistics.RecordExecution(running.Count, timings.InputTicks, timings.InferTicks, timings.OutputTicks);
            if (running.Count > _largestSteps[instance])
            {
                _largestSteps[instance] = running.Count;
            }

            var (queries, hits) = decoder.PrefixCacheTokens;
            if (queries != prefixQueries)
            {
                _metrics.PrefixCacheLookups(queries - prefixQueries, hits - prefixHits);
                (prefixQueries, prefixHits) = (queries, hits);
            }

            now = Stopwatch.GetTimestamp();
            var kept = 0;
            var preempted = 0;
            for (var i = 0; i < running.Count; i++)
            {
                var sequence = running[i];
                if (sequence.Preempted)
                {
                    preempted++;
                    continue;
                }
                // A prompt still being read (or read and waiting for room) has no token yet.
                if (sequence.HasLogits && sequence.Accept(logits.AsSpan(i * width, vocabulary), scratch, now))
                {
                    _statistics.Success.Record(now - sequence.ArrivalTimestamp);
                    Interlocked.Decrement(ref _running);
                    continue;
                }
                running[kept++] = sequence;
            }
            if (preempted > 0)
            {
                Requeue(batch, preempted);
            }
            running.RemoveRange(kept, running.Count - kept);
            _metrics.SetRunning(RunningCount);
            SetCacheUsage();
        }
    }

    /// <summary>
    /// Puts the <paramref name="count"/> preempted sequences of <paramref name="batch"/> back at the head of the queue,
    /// the oldest first, past its bound: they were admitted, and are computed again (their prompt and what they have
    /// generated) when memory frees.
    /// </summary>
    private void Requeue(List<DecoderSequence> batch, int count)
    {
        _metrics.Preempted(count);
        lock (_waiting)
        {
            for (var i = batch.Count - 1; i >= 0; i--)
            {
                if (batch[i] is GeneratingSequence { Preempted: true } sequence)
                {
                    sequence.Preempted = false;
                    sequence.WaitingNode = _waiting.AddFirst(sequence);
                    Interlocked.Decrement(ref _running);
                }
            }
            _metrics.SetWaiting(_waiting.Count);
        }
    }

    /// <summary>The share of every instance's KV cache the running sequences have reserved (vLLM's kv_cache_usage_perc, 0 to 1).</summary>
    public double CacheUsage
    {
        get
        {
            long used = 0, capacity = 0;
            foreach (var decoder in _decoders)
            {
                var (u, c) = decoder.CacheTokens;
                used += u;
                capacity += c;
            }
            return capacity == 0 ? 0 : (double)used / capacity;
        }
    }

    private void SetCacheUsage()
    {
        if (_generation.KvCache is not null)
        {
            _metrics.SetKvCacheUsage(CacheUsage);
        }
    }

    /// <summary>Cancels every waiting and running sequence and stops the loops; the engines are released after.</summary>
    public void Dispose()
    {
        lock (_waiting)
        {
            _stopping = true;
            var now = Stopwatch.GetTimestamp();
            while (_waiting.First is { } first)
            {
                _waiting.RemoveFirst();
                first.Value.WaitingNode = null;
                Drop(first.Value, now);
            }
            Monitor.PulseAll(_waiting);
        }
        foreach (var thread in _threads)
        {
            // The last lease may be released by a loop itself, as its final sequence finishes; it exits on its own.
            if (thread != Thread.CurrentThread)
            {
                thread.Join();
            }
        }
        foreach (var instance in _instances)
        {
            instance.Dispose();
        }
    }
}
