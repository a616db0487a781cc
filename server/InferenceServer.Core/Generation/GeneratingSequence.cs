using System.Diagnostics;
using System.Threading.Channels;
using InferenceServer.Inference;
using InferenceServer.Observability;

namespace InferenceServer.Generation;

/// <summary>
/// One request being generated: its tokens, sampler, detokenizer and stop conditions, and the channel its text goes
/// out on. Owned by the batcher thread from admission to finish; only <see cref="Cancel"/> comes from elsewhere.
/// </summary>
internal sealed class GeneratingSequence : DecoderSequence
{
    private readonly Channel<GenerationChunk> _chunks = Channel.CreateUnbounded<GenerationChunk>(
        new UnboundedChannelOptions { SingleReader = true, SingleWriter = true, AllowSynchronousContinuations = false });
    private readonly Sampler _sampler;
    private readonly IncrementalDecoder _detokenizer;
    private readonly StopSequenceMatcher? _stops;
    // The ids that end the sequence (the model's EOS and stop_token_ids); empty with ignore_eos.
    private readonly ReadOnlyMemory<int> _endTokens;
    private readonly int _maxTokens;
    private readonly GenerationMetrics _metrics;
    private readonly Activity? _activity;
    private readonly IDisposable _lease;
    private CancellationTokenRegistration _cancellation;
    private volatile bool _cancelled;
    private long _lastTokenTimestamp;
    private bool _ended;
    private bool _engineFailed;

    public GeneratingSequence(
        List<int> promptTokens, GenerationRequest request, int maxTokens, GenerationModel config, GenerationMetrics metrics, Activity? activity, IDisposable lease)
    {
        Tokens.AddRange(promptTokens);
        PromptTokens = promptTokens.Count;
        MaxLength = promptTokens.Count + maxTokens;
        _sampler = new Sampler(request.Sampling);
        _detokenizer = config.Tokenizer.CreateDecoder(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(promptTokens));
        _stops = request.Stop.Count > 0 ? new StopSequenceMatcher(request.Stop) : null;
        _endTokens = request.IgnoreEos ? ReadOnlyMemory<int>.Empty : config.EndTokenIds;
        _maxTokens = maxTokens;
        _metrics = metrics;
        _activity = activity;
        _lease = lease;
        ArrivalTimestamp = Stopwatch.GetTimestamp();
        Deadline = request.Deadline;
    }

    /// <summary>When the generation must have ended (<see cref="Stopwatch.GetTimestamp"/>), 0 for none.</summary>
    public long Deadline { get; }

    /// <summary>Whether <paramref name="now"/> is past the deadline.</summary>
    public bool Expired(long now) => Deadline > 0 && now >= Deadline;

    /// <summary>The reader side, handed to the protocol adapter.</summary>
    public ChannelReader<GenerationChunk> Chunks => _chunks.Reader;

    public int PromptTokens { get; }

    public int CompletionTokens { get; private set; }

    public long ArrivalTimestamp { get; }

    public bool IsCancelled => _cancelled;

    public FinishReason Finish { get; private set; }

    /// <summary>Its node in the batcher's waiting queue while it waits (guarded by the queue's lock).</summary>
    public LinkedListNode<GeneratingSequence>? WaitingNode { get; set; }

    public void WatchCancellation(CancellationToken token, Scheduling.ContinuousBatcher batcher) =>
        _cancellation = token.Register(static s => { var (sequence, owner) = ((GeneratingSequence, Scheduling.ContinuousBatcher))s!; owner.Cancel(sequence); }, (this, batcher));

    public void Cancel() => _cancelled = true;

    /// <summary>Takes the sampled next token; returns true when the sequence is finished.</summary>
    public bool Accept(ReadOnlySpan<float> logits, Span<float> scratch, long now)
    {
        var token = _sampler.Sample(logits, scratch);
        CompletionTokens++;
        _metrics.GenerationTokens.Inc();
        if (CompletionTokens == 1)
        {
            _metrics.TimeToFirstToken.Observe(Seconds(now - ArrivalTimestamp));
            (_lease as IGenerationObserver)?.FirstToken();
        }
        else
        {
            _metrics.TimePerOutputToken.Observe(Seconds(now - _lastTokenTimestamp));
        }
        _lastTokenTimestamp = now;

        if (_endTokens.Span.Contains(token))
        {
            // An end-of-sequence or stop token ends the text; it is not part of it.
            Complete(FlushText(), FinishReason.Stop, now);
            return true;
        }
        Tokens.Add(token);
        var text = _detokenizer.Append(token);
        if (_stops is not null && text.Length > 0 && _stops.Append(text, out text) == StopResult.Stopped)
        {
            Complete(text, FinishReason.Stop, now);
            return true;
        }
        if (CompletionTokens >= _maxTokens)
        {
            Complete(text + FlushText(), FinishReason.Length, now);
            return true;
        }
        if (text.Length > 0)
        {
            _chunks.Writer.TryWrite(new GenerationChunk(text, CompletionTokens, FinishReason.None));
        }
        return false;
    }

    /// <summary>Ends the sequence without output (the client left or the server is stopping).</summary>
    public void CompleteCancelled(long now)
    {
        Finish = FinishReason.Cancelled;
        End(now);
        _chunks.Writer.TryComplete(new OperationCanceledException("the generation was cancelled"));
    }

    /// <summary>Ends the sequence with an engine error (or its deadline's: <see cref="InferenceErrorKind.DeadlineExceeded"/>).</summary>
    public void Fail(InferenceException error, long now)
    {
        Finish = FinishReason.Cancelled;
        Telemetry.RecordFailure(_activity, error);
        _engineFailed = error.Kind == InferenceErrorKind.Internal;
        End(now, "error");
        _chunks.Writer.TryComplete(error);
    }

    private string FlushText()
    {
        var rest = _detokenizer.Flush();
        if (_stops is null)
        {
            return rest;
        }
        var emitted = "";
        if (rest.Length > 0 && _stops.Append(rest, out emitted) == StopResult.Stopped)
        {
            return emitted;
        }
        return emitted + _stops.Flush();
    }

    private void Complete(string text, FinishReason reason, long now)
    {
        Finish = reason;
        // Ended first (leases released, tokens charged, the breaker told), then the last chunk: a client that sends its
        // next request the moment it reads this one finds the permit back and the budget charged.
        End(now);
        _chunks.Writer.TryWrite(new GenerationChunk(text, CompletionTokens, reason));
        _chunks.Writer.TryComplete();
    }

    private void End(long now, string? outcome = null)
    {
        if (_ended)
        {
            return;
        }
        _ended = true;
        _cancellation.Dispose();
        _metrics.PromptTokens.Inc(PromptTokens);
        _metrics.RequestPromptTokens.Observe(PromptTokens);
        _metrics.RequestGenerationTokens.Observe(CompletionTokens);
        _metrics.RequestLatency.Observe(Seconds(now - ArrivalTimestamp));
        var reason = outcome ?? Finish.Name() ?? "cancelled";
        _metrics.Finished(reason);
        if (_activity is not null)
        {
            _activity.SetTag(Telemetry.UsageInputTokens, PromptTokens);
            _activity.SetTag(Telemetry.UsageOutputTokens, CompletionTokens);
            _activity.SetTag(Telemetry.ResponseFinishReasons, new[] { reason });
            // An engine failure has recorded its own outcome (Fail).
            if (outcome is null && Finish == FinishReason.Cancelled)
            {
                Telemetry.RecordFailure(_activity, Telemetry.Cancelled, "the generation was cancelled");
            }
            else if (outcome is null)
            {
                Telemetry.RecordSuccess(_activity);
            }
            _activity.Stop();
        }
        DecoderState?.Dispose();
        DecoderState = null;
        (_lease as IGenerationObserver)?.Ended(engineFailed: _engineFailed, cancelled: !_engineFailed && Finish == FinishReason.Cancelled, CompletionTokens);
        _lease.Dispose();
    }

    private static double Seconds(long ticks) => ticks / (double)Stopwatch.Frequency;
}
