namespace InferenceServer.Observability;

/// <summary>Where the access log's lines go: stdout, unless a service of this type is registered after the server's.</summary>
public interface IAccessLogSink
{
    /// <summary>Writes whole lines (UTF-8 JSON, each ending in a newline). Called by one thread at a time.</summary>
    void Write(ReadOnlySpan<byte> lines);
}

/// <summary>A sink over a stream; the server's default is the process's standard output (unbuffered: the writer batches).</summary>
public sealed class StreamAccessLogSink(Stream stream) : IAccessLogSink, IDisposable
{
    /// <inheritdoc />
    public void Write(ReadOnlySpan<byte> lines) => stream.Write(lines);

    /// <summary>Disposes the stream.</summary>
    public void Dispose() => stream.Dispose();
}
