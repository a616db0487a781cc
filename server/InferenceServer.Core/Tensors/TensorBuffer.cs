using System.Buffers;
using System.Buffers.Binary;

namespace InferenceServer.Tensors;

/// <summary>
/// The bytes of one tensor in a buffer rented from <see cref="ArrayPool{T}.Shared"/>: little-endian elements for
/// fixed-size types; for BYTES, each element as a 4-byte little-endian length followed by its bytes (the
/// protocol's raw form, so raw requests are copied once and never re-encoded).
/// </summary>
public sealed class TensorBuffer : IDisposable
{
    private byte[]? _array;

    private TensorBuffer(byte[] array, int length)
    {
        _array = array;
        Length = length;
    }

    /// <summary>Bytes in use.</summary>
    public int Length { get; private set; }

    /// <summary>The bytes in use.</summary>
    public Span<byte> Span => Array.AsSpan(0, Length);

    /// <summary>The bytes in use.</summary>
    public Memory<byte> Memory => Array.AsMemory(0, Length);

    /// <summary>The rented array (longer than <see cref="Length"/>); never empty, so it can always be pinned.</summary>
    public byte[] Array => _array ?? throw new ObjectDisposedException(nameof(TensorBuffer));

    /// <summary>Rents a buffer of exactly <paramref name="length"/> bytes in use (contents undefined).</summary>
    public static TensorBuffer Rent(int length) => new(ArrayPool<byte>.Shared.Rent(Math.Max(length, 1)), length);

    /// <summary>Rents a buffer holding a copy of <paramref name="source"/>.</summary>
    public static TensorBuffer CopyOf(ReadOnlySpan<byte> source)
    {
        var buffer = Rent(source.Length);
        source.CopyTo(buffer.Span);
        return buffer;
    }

    /// <summary>Shrinks the bytes in use (after writing fewer than were reserved).</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        Length = length;
    }

    /// <summary>Returns the array to the pool.</summary>
    public void Dispose()
    {
        var array = Interlocked.Exchange(ref _array, null);
        if (array is not null)
        {
            ArrayPool<byte>.Shared.Return(array);
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
