using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace InferenceServer.Tensors;

/// <summary>
/// Memory that one or more <see cref="TensorBuffer"/>s view: a pooled array, a protocol message's bytes, or an
/// engine's own output. Released when the last view is disposed.
/// </summary>
public abstract class BufferOwner
{
    private int _references = 1;

    /// <summary>All the owned bytes.</summary>
    public abstract Memory<byte> Memory { get; }

    internal void AddReference() => Interlocked.Increment(ref _references);

    internal void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            Free();
        }
    }

    /// <summary>Gives the memory back (to the pool, the engine, ...); called once, after the last view is gone.</summary>
    protected abstract void Free();
}

/// <summary>
/// The bytes of one tensor: little-endian elements for fixed-size types; for BYTES, each element as a 4-byte
/// little-endian length followed by its bytes (the protocol's raw form, so raw requests are never re-encoded).
/// A buffer is a view of memory held by a <see cref="BufferOwner"/>: a pooled array, a request's own bytes (no copy),
/// or an engine output (no copy); slices share it, and it is released when the last view is disposed.
/// </summary>
public sealed class TensorBuffer : IDisposable
{
    private BufferOwner? _owner;
    private readonly int _offset;

    private TensorBuffer(BufferOwner owner, int offset, int length)
    {
        _owner = owner;
        _offset = offset;
        Length = length;
    }

    /// <summary>Bytes in use.</summary>
    public int Length { get; private set; }

    /// <summary>The bytes in use.</summary>
    public Span<byte> Span => Memory.Span;

    /// <summary>The bytes in use.</summary>
    public Memory<byte> Memory => Owner.Memory.Slice(_offset, Length);

    private BufferOwner Owner => _owner ?? throw new ObjectDisposedException(nameof(TensorBuffer));

    /// <summary>Rents a buffer of exactly <paramref name="length"/> bytes in use (contents undefined).</summary>
    public static TensorBuffer Rent(int length) => new(new PooledArray(ArrayPool<byte>.Shared.Rent(Math.Max(length, 1))), 0, length);

    /// <summary>Rents a buffer holding a copy of <paramref name="source"/>.</summary>
    public static TensorBuffer CopyOf(ReadOnlySpan<byte> source)
    {
        var buffer = Rent(source.Length);
        source.CopyTo(buffer.Span);
        return buffer;
    }

    /// <summary>A view of memory someone else keeps alive for as long as the tensor is used (a request message's bytes); never written to.</summary>
    public static TensorBuffer Wrap(ReadOnlyMemory<byte> memory) => new(new External(MemoryMarshal.AsMemory(memory)), 0, memory.Length);

    /// <summary>A view of all of <paramref name="owner"/>'s memory, taking over the owner's first reference.</summary>
    public static TensorBuffer Own(BufferOwner owner, int length) => new(owner, 0, length);

    /// <summary>A view of <paramref name="length"/> bytes from <paramref name="offset"/>, sharing this buffer's memory (no copy).</summary>
    public TensorBuffer Slice(int offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((long)offset + length, Length);
        var owner = Owner;
        owner.AddReference();
        return new TensorBuffer(owner, _offset + offset, length);
    }

    /// <summary>Pins the bytes for native code; the memory always has an address, even when empty.</summary>
    public MemoryHandle Pin()
    {
        var all = Owner.Memory;
        return (all.Length > 0 ? all[Math.Min(_offset, all.Length - 1)..] : new byte[1].AsMemory()).Pin();
    }

    /// <summary>
    /// A zeroed buffer of <paramref name="length"/> bytes pinned for its whole life (never moved by the GC), for memory a
    /// caller keeps across engine runs and views with <see cref="Slice"/> and <see cref="Resize"/> (a KV cache).
    /// </summary>
    public static TensorBuffer AllocatePinned(int length) => new(new PinnedArray(GC.AllocateArray<byte>(Math.Max(length, 1), pinned: true)), 0, length);

    /// <summary>
    /// Sets the bytes in use of a view that is reused with different shapes, up to all the memory from the view's start
    /// (a KV-cache view whose sequence length changes every step).
    /// </summary>
    public void Resize(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Owner.Memory.Length - _offset);
        Length = length;
    }

    /// <summary>Shrinks the bytes in use (after writing fewer than were reserved).</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        Length = length;
    }

    /// <summary>Releases this view; the memory is released with the last view.</summary>
    public void Dispose() => Interlocked.Exchange(ref _owner, null)?.Release();

    private sealed class PooledArray(byte[] array) : BufferOwner
    {
        public override Memory<byte> Memory => array;

        protected override void Free() => ArrayPool<byte>.Shared.Return(array);
    }

    private sealed class PinnedArray(byte[] array) : BufferOwner
    {
        public override Memory<byte> Memory => array;

        protected override void Free()
        {
        }
    }

    private sealed class External(Memory<byte> memory) : BufferOwner
    {
        public override Memory<byte> Memory => memory;

        protected override void Free()
        {
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
