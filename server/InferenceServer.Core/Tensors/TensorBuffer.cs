using System.Buffers;
using System.Buffers.Binary;

namespace InferenceServer.Tensors;

/// <summary>
/// The bytes of one tensor in an array rented from <see cref="ArrayPool{T}.Shared"/>: little-endian elements for
/// fixed-size types; for BYTES, each element as a 4-byte little-endian length followed by its bytes (the
/// protocol's raw form, so raw requests are copied once and never re-encoded). A buffer may be a slice of a
/// larger one (a request's rows of a batch's output); the array returns to the pool when the last slice is disposed.
/// </summary>
public sealed class TensorBuffer : IDisposable
{
    private RentedArray? _owner;
    private readonly int _offset;

    private TensorBuffer(RentedArray owner, int offset, int length)
    {
        _owner = owner;
        _offset = offset;
        Length = length;
    }

    /// <summary>Bytes in use.</summary>
    public int Length { get; private set; }

    /// <summary>The bytes in use.</summary>
    public Span<byte> Span => Owner.Array.AsSpan(_offset, Length);

    /// <summary>The bytes in use.</summary>
    public Memory<byte> Memory => Owner.Array.AsMemory(_offset, Length);

    private RentedArray Owner => _owner ?? throw new ObjectDisposedException(nameof(TensorBuffer));

    /// <summary>Rents a buffer of exactly <paramref name="length"/> bytes in use (contents undefined).</summary>
    public static TensorBuffer Rent(int length) => new(new RentedArray(ArrayPool<byte>.Shared.Rent(Math.Max(length, 1))), 0, length);

    /// <summary>Rents a buffer holding a copy of <paramref name="source"/>.</summary>
    public static TensorBuffer CopyOf(ReadOnlySpan<byte> source)
    {
        var buffer = Rent(source.Length);
        source.CopyTo(buffer.Span);
        return buffer;
    }

    /// <summary>A view of <paramref name="length"/> bytes from <paramref name="offset"/>, sharing this buffer's array (no copy).</summary>
    public TensorBuffer Slice(int offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((long)offset + length, Length);
        var owner = Owner;
        owner.AddReference();
        return new TensorBuffer(owner, _offset + offset, length);
    }

    /// <summary>Pins the bytes for native code; the memory always has an address, even when empty.</summary>
    public MemoryHandle Pin() => Owner.Array.AsMemory(_offset < Owner.Array.Length ? _offset : 0).Pin();

    /// <summary>Shrinks the bytes in use (after writing fewer than were reserved).</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        Length = length;
    }

    /// <summary>Releases this view; the array returns to the pool with the last view.</summary>
    public void Dispose() => Interlocked.Exchange(ref _owner, null)?.Release();

    private sealed class RentedArray(byte[] array)
    {
        private int _references = 1;

        public byte[] Array { get; } = array;

        public void AddReference() => Interlocked.Increment(ref _references);

        public void Release()
        {
            if (Interlocked.Decrement(ref _references) == 0)
            {
                ArrayPool<byte>.Shared.Return(Array);
            }
        }
    }
}

/// <summary>Reads and writes the length-prefixed form of BYTES tensors.</summary>
public static class BytesElements
{
    /// <summary>Counts the elements of a length-prefixed BYTES buffer; false when it is malformed.</summary>
    public static bool TryCount(ReadOnlySpan<byte> data, out long count)
    {
        count = 0;
        while (!data.IsEmpty)
        {
            if (data.Length < 4)
            {
                return false;
            }
            var length = BinaryPrimitives.ReadUInt32LittleEndian(data);
            if (length > (uint)(data.Length - 4))
            {
                return false;
            }
            data = data[(4 + (int)length)..];
            count++;
        }
        return true;
    }

    /// <summary>Reads the element at the front of <paramref name="data"/> and advances past it (the buffer must be well formed).</summary>
    public static ReadOnlySpan<byte> ReadNext(ref ReadOnlySpan<byte> data)
    {
        var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(data);
        var element = data.Slice(4, length);
        data = data[(4 + length)..];
        return element;
    }
}
