using System.Buffers.Binary;

namespace InferenceServer.ModelBuilder.TorchScript;

/// <summary>The element type of a PyTorch storage, named by its storage class in the archive (<c>torch.FloatStorage</c>, ...).</summary>
public enum TorchScalarType
{
    /// <summary><c>torch.float32</c> (<c>FloatStorage</c>).</summary>
    Float32,

    /// <summary><c>torch.float64</c> (<c>DoubleStorage</c>).</summary>
    Float64,

    /// <summary><c>torch.float16</c> (<c>HalfStorage</c>).</summary>
    Float16,

    /// <summary><c>torch.bfloat16</c> (<c>BFloat16Storage</c>).</summary>
    BFloat16,

    /// <summary><c>torch.int64</c> (<c>LongStorage</c>).</summary>
    Int64,

    /// <summary><c>torch.int32</c> (<c>IntStorage</c>).</summary>
    Int32,

    /// <summary><c>torch.uint8</c> (<c>ByteStorage</c>).</summary>
    UInt8,

    /// <summary><c>torch.bool</c> (<c>BoolStorage</c>).</summary>
    Bool,
}

/// <summary>
/// One tensor of a TorchScript archive: a view (offset, sizes, strides, in elements) into a storage, whose bytes are
/// the archive's <c>data/{key}</c> entry, little-endian.
/// </summary>
public sealed class TorchScriptTensor
{
    private readonly byte[] _storage;

    internal TorchScriptTensor(string storageKey, TorchScalarType type, byte[] storage, long offset, long[] shape, long[] strides)
    {
        StorageKey = storageKey;
        Type = type;
        _storage = storage;
        Offset = offset;
        Shape = shape;
        Strides = strides;
        long last = offset;
        for (int i = 0; i < shape.Length; i++)
        {
            if (shape[i] < 0 || strides[i] < 0)
            {
                throw new InvalidDataException($"Tensor over storage '{storageKey}' has a negative size or stride.");
            }

            last += shape[i] == 0 ? 0 : (shape[i] - 1) * strides[i];
        }

        if (ElementCount > 0 && (offset < 0 || (last + 1) * ElementSize(type) > storage.Length))
        {
            throw new InvalidDataException($"Tensor over storage '{storageKey}' reaches past its {storage.Length} bytes.");
        }
    }

    /// <summary>The storage's key: its entry is <c>data/{key}</c>; tensors sharing a key share their bytes.</summary>
    public string StorageKey { get; }

    /// <summary>The element type.</summary>
    public TorchScalarType Type { get; }

    /// <summary>The first element's index in the storage.</summary>
    public long Offset { get; }

    /// <summary>The sizes.</summary>
    public long[] Shape { get; }

    /// <summary>The strides, in elements.</summary>
    public long[] Strides { get; }

    /// <summary>The number of elements: the product of <see cref="Shape"/>.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The bytes of one element of <paramref name="type"/>.</summary>
    public static int ElementSize(TorchScalarType type) => type switch
    {
        TorchScalarType.Float64 or TorchScalarType.Int64 => 8,
        TorchScalarType.Float32 or TorchScalarType.Int32 => 4,
        TorchScalarType.Float16 or TorchScalarType.BFloat16 => 2,
        TorchScalarType.UInt8 or TorchScalarType.Bool => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not a storage type."),
    };

    /// <summary>The elements, row-major, as floats (exact for FLOAT, FLOAT16 and BFLOAT16; rounded for DOUBLE).</summary>
    /// <exception cref="InvalidOperationException">The tensor is not of a floating-point type.</exception>
    public float[] ToFloats()
    {
        Func<ReadOnlySpan<byte>, float> read = Type switch
        {
            TorchScalarType.Float32 => BinaryPrimitives.ReadSingleLittleEndian,
            TorchScalarType.Float64 => b => (float)BinaryPrimitives.ReadDoubleLittleEndian(b),
            TorchScalarType.Float16 => b => (float)BinaryPrimitives.ReadHalfLittleEndian(b),
            TorchScalarType.BFloat16 => b => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(b) << 16),
            _ => throw new InvalidOperationException($"A {Type} tensor has no float values."),
        };
        return Gather(read);
    }

    /// <summary>The elements, row-major, as 64-bit integers.</summary>
    /// <exception cref="InvalidOperationException">The tensor is not of an integer type.</exception>
    public long[] ToInt64s()
    {
        Func<ReadOnlySpan<byte>, long> read = Type switch
        {
            TorchScalarType.Int64 => BinaryPrimitives.ReadInt64LittleEndian,
            TorchScalarType.Int32 => b => BinaryPrimitives.ReadInt32LittleEndian(b),
            TorchScalarType.UInt8 or TorchScalarType.Bool => b => b[0],
            _ => throw new InvalidOperationException($"A {Type} tensor has no integer values."),
        };
        return Gather(read);
    }

    /// <summary>Reads the elements in row-major order through the strides (any view: transposed, sliced, expanded).</summary>
    private T[] Gather<T>(Func<ReadOnlySpan<byte>, T> read)
    {
        int size = ElementSize(Type);
        var values = new T[checked((int)ElementCount)];
        var index = new long[Shape.Length];
        for (int n = 0; n < values.Length; n++)
        {
            long element = Offset;
            for (int d = 0; d < Shape.Length; d++)
            {
                element += index[d] * Strides[d];
            }

            values[n] = read(_storage.AsSpan(checked((int)(element * size)), size));
            for (int d = Shape.Length - 1; d >= 0 && ++index[d] == Shape[d]; d--)
            {
                index[d] = 0;
            }
        }

        return values;
    }
}
