using System.Buffers;

namespace InferenceServer.Http;

/// <summary>
/// An <see cref="IBufferWriter{T}"/> over arrays rented from the shared pool, for building response bodies and access
/// log lines. <see cref="Detach"/> hands the array over (its new owner returns it to the pool) and starts afresh.
/// </summary>
internal sealed class PooledBufferWriter : IBufferWriter<byte>, IDisposable
{
    private readonly int _initialCapacity;
    private byte[] _buffer;
    private int _written;

    /// <summary>Creates a writer; with <paramref name="rentNow"/> false, the first write rents the array.</summary>
    public PooledBufferWriter(int initialCapacity = 4096, bool rentNow = true)
    {
        _initialCapacity = initialCapacity;
        _buffer = rentNow ? ArrayPool<byte>.Shared.Rent(initialCapacity) : [];
    }

    public ReadOnlyMemory<byte> WrittenMemory => _buffer.AsMemory(0, _written);

    public int WrittenCount => _written;

    public void Advance(int count) => _written += count;

    public Memory<byte> GetMemory(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsMemory(_written);
    }

    public Span<byte> GetSpan(int sizeHint = 0)
    {
        Ensure(sizeHint);
        return _buffer.AsSpan(_written);
    }

    /// <summary>Hands over the array and the length written; the writer starts empty (renting on its next write).</summary>
    public (byte[] Array, int Length) Detach()
    {
        var written = (_buffer, _written);
        _buffer = [];
        _written = 0;
        return written;
    }

    public void Dispose()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = [];
    }

    private void Ensure(int sizeHint)
    {
        if (_buffer.Length - _written >= Math.Max(sizeHint, 1))
        {
            return;
        }
        var grown = ArrayPool<byte>.Shared.Rent(Math.Max(Math.Max(_buffer.Length * 2, _initialCapacity), _written + Math.Max(sizeHint, 256)));
        _buffer.AsSpan(0, _written).CopyTo(grown);
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
        _buffer = grown;
    }
}
