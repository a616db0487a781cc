using System.Buffers;
using System.Threading.Channels;
using Prometheus;

namespace InferenceServer.Observability;

/// <summary>The access log's queue.</summary>
internal sealed class AccessLogOptions
{
    /// <summary>Lines waiting for the sink; when it is full, new lines are dropped and counted.</summary>
    public int QueueCapacity { get; init; } = 8192;
}

/// <summary>
/// The one writer of the access log: requests hand it lines through a bounded queue and never wait; a background loop
/// writes them to the <see cref="IAccessLogSink"/> in batches. A full queue drops the line and counts it
/// (<c>inference_access_log_dropped_total</c>). What is queued is written when the server has stopped.
/// </summary>
internal sealed partial class AccessLogWriter : IHostedLifecycleService
{
    /// <summary>
    /// The largest write of several lines: POSIX keeps a pipe write of up to PIPE_BUF (4096) bytes whole, so the
    /// console logger's lines, written to the same stdout, never land inside ours.
    /// </summary>
    public const int BatchBytes = 4096;

    /// <summary>
    /// How long the writer lets lines gather after a write: waking it for every line would cost each request a
    /// thread-pool hop, which a small model's request rate feels.
    /// </summary>
    public static readonly TimeSpan GatherTime = TimeSpan.FromMilliseconds(10);

    private readonly Channel<Line> _queue;
    private readonly IAccessLogSink _sink;
    private readonly Counter _dropped;
    private readonly ILogger<AccessLogWriter> _logger;
    private Task _loop = Task.CompletedTask;
    private bool _sinkFailed;

    public AccessLogWriter(IAccessLogSink sink, ServerMetrics metrics, AccessLogOptions options, ILogger<AccessLogWriter> logger)
    {
        _sink = sink;
        _dropped = metrics.AccessLogDropped;
        _logger = logger;
        _queue = Channel.CreateBounded<Line>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>Queues one line; takes the array, rented from the shared pool, and returns it when written or dropped.</summary>
    public void Enqueue(byte[] array, int length)
    {
        if (!_queue.Writer.TryWrite(new Line(array, length)))
        {
            Drop(array);
        }
    }

    /// <summary>Counts a line that will not be written and returns its array.</summary>
    public void Drop(byte[] array)
    {
        if (array.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
        _dropped.Inc();
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _loop = Task.Run(WriteLinesAsync, CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>Runs after the server has stopped and its last requests have been logged: writes what is queued.</summary>
    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        try
        {
            await _loop.WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The host's stop timeout passed (a drain cut requests stuck in an engine): the process exits without the rest.
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task WriteLinesAsync()
    {
        var reader = _queue.Reader;
        var batch = ArrayPool<byte>.Shared.Rent(BatchBytes);
        try
        {
            while (await reader.WaitToReadAsync())
            {
                var used = 0;
                var lines = 0;
                while (reader.TryRead(out var line))
                {
                    if (used + line.Length > batch.Length && used > 0)
                    {
                        Write(batch.AsSpan(0, used), lines);
                        used = 0;
                        lines = 0;
                    }
                    if (line.Length > batch.Length)
                    {
                        Write(line.Array.AsSpan(0, line.Length), 1);
                    }
                    else
                    {
                        line.Array.AsSpan(0, line.Length).CopyTo(batch.AsSpan(used));
                        used += line.Length;
                        lines++;
                    }
                    ArrayPool<byte>.Shared.Return(line.Array);
                }
                if (used > 0)
                {
                    Write(batch.AsSpan(0, used), lines);
                }
                if (!reader.Completion.IsCompleted)
                {
                    await Task.Delay(GatherTime);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(batch);
        }
    }

    private void Write(ReadOnlySpan<byte> lines, int count)
    {
        try
        {
            _sink.Write(lines);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or UnauthorizedAccessException)
        {
            // stdout closed or broken: the lines are lost; say so once, count every one.
            _dropped.Inc(count);
            if (!_sinkFailed)
            {
                _sinkFailed = true;
                Log.SinkFailed(_logger, e);
            }
        }
    }

    private readonly record struct Line(byte[] Array, int Length);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "The access log cannot be written; its lines are dropped and counted in inference_access_log_dropped_total")]
        public static partial void SinkFailed(ILogger logger, Exception exception);
    }
}
