using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace InferenceServer.Tensors;

/// <summary>
/// Appends elements one at a time into a pooled buffer: the decoders of typed protocol encodings (JSON arrays, gRPC
/// typed contents) write through this, with no per-element allocation.
/// </summary>
public sealed class TensorWriter : IDisposable
{
    private TensorBuffer? _buffer;
    private int _position;

    /// <summary>Starts a buffer sized for <paramref name="expectedElements"/> elements of <paramref name="dataType"/>.</summary>
    public TensorWriter(DataType dataType, long expectedElements)
    {
        DataType = dataType;
        var size = dataType.ElementSize();
        var capacity = size == 0 ? Math.Clamp(expectedElements * 16, 64, 1 << 20) : Math.Clamp(expectedElements * size, 1, Array.MaxLength);
        _buffer = TensorBuffer.Rent((int)capacity);
    }

    /// <summary>The element type being written.</summary>
    public DataType DataType { get; }

    /// <summary>Elements written so far.</summary>
    public long Count { get; private set; }

    /// <summary>Appends one fixed-size element (the caller has converted it to the tensor's element type).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write<T>(T value) where T : unmanaged
    {
        var size = Unsafe.SizeOf<T>();
        MemoryMarshal.Write(Reserve(size), in value);
        Count++;
    }

    /// <summary>Appends one BYTES element in the length-prefixed form.</summary>
    public void WriteBytes(ReadOnlySpan<byte> element)
    {
        var span = Reserve(4 + element.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)element.Length);
        element.CopyTo(span[4..]);
        Count++;
    }

    /// <summary>Hands over the written bytes; the writer is empty afterwards.</summary>
    public TensorBuffer Detach()
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(TensorWriter));
        buffer.Truncate(_position);
        _buffer = null;
        return buffer;
    }

    /// <inheritdoc />
    public void Dispose() => Interlocked.Exchange(ref _buffer, null)?.Dispose();

    private Span<byte> Reserve(int bytes)
    {
        var buffer = _buffer ?? throw new ObjectDisposedException(nameof(TensorWriter));
        if (_position + bytes > buffer.Length)
        {
            var grown = TensorBuffer.Rent((int)Math.Min(Array.MaxLength, Math.Max((long)buffer.Length * 2, (long)_position + bytes)));
            buffer.Span[.._position].CopyTo(grown.Span);
            buffer.Dispose();
            _buffer = buffer = grown;
        }
        var span = buffer.Span.Slice(_position, bytes);
        _position += bytes;
        return span;
    }
}
