using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;

namespace InferenceServer.ModelBuilder;

/// <summary>
/// A dense tensor as stored in an ONNX <c>TensorProto</c>.
/// </summary>
/// <param name="Name">Tensor name; may be empty.</param>
/// <param name="Type">Element type.</param>
/// <param name="Dims">Shape; empty for a scalar.</param>
/// <param name="Data">
/// Contiguous row-major element bytes in little-endian order (booleans one byte each,
/// FLOAT16/BFLOAT16 as their 16-bit patterns, complex numbers as real/imaginary pairs).
/// Empty for STRING tensors.
/// </param>
/// <param name="Strings">The elements of a STRING tensor, row-major; null for every other type.</param>
public sealed record OnnxTensor(string Name, TensorElementKind Type, long[] Dims, byte[] Data, byte[][]? Strings)
{
    /// <summary>Number of elements: the product of <see cref="Dims"/> (1 for a scalar).</summary>
    public long ElementCount => ElementCountOf(Dims);

    /// <summary>
    /// Creates a tensor whose element type is inferred from <typeparamref name="T"/>:
    /// float, byte, sbyte, ushort, short, int, long, bool, <see cref="Half"/>, double, uint, ulong.
    /// For BFLOAT16 or complex types use <see cref="Create{T}(string, TensorElementKind, long[], ReadOnlySpan{T})"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The value count does not match the shape, or T has no ONNX equivalent.</exception>
    public static OnnxTensor Create<T>(string name, long[] dims, ReadOnlySpan<T> values) where T : unmanaged =>
        Create(name, KindOf<T>(), dims, values);

    /// <summary>
    /// Creates a tensor of the given element type from values whose in-memory layout is the
    /// element layout (e.g. <see cref="ushort"/> bit patterns for BFLOAT16, float pairs for COMPLEX64).
    /// </summary>
    /// <exception cref="ArgumentException">The byte count does not match the shape and type.</exception>
    public static OnnxTensor Create<T>(string name, TensorElementKind type, long[] dims, ReadOnlySpan<T> values) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dims);
        if (type == TensorElementKind.String)
        {
            throw new ArgumentException("Use FromStrings for STRING tensors.", nameof(type));
        }

        var bytes = MemoryMarshal.AsBytes(values);
        long expected = ElementCountOf(dims) * type.ElementSize();
        if (bytes.Length != expected)
        {
            throw new ArgumentException(
                $"Tensor '{name}' of type {type.OnnxName()} and shape [{string.Join(",", dims)}] needs {expected} bytes, got {bytes.Length}.",
                nameof(values));
        }

        return new OnnxTensor(name, type, (long[])dims.Clone(), bytes.ToArray(), null);
    }

    /// <summary>Creates a STRING tensor from UTF-8 encoded <paramref name="values"/>.</summary>
    /// <exception cref="ArgumentException">The value count does not match the shape.</exception>
    public static OnnxTensor FromStrings(string name, long[] dims, params string[] values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return FromBytes(name, dims, values.Select(Encoding.UTF8.GetBytes).ToArray());
    }

    /// <summary>Creates a STRING tensor from raw byte strings.</summary>
    /// <exception cref="ArgumentException">The value count does not match the shape.</exception>
    public static OnnxTensor FromBytes(string name, long[] dims, params byte[][] values)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dims);
        ArgumentNullException.ThrowIfNull(values);
        if (values.Length != ElementCountOf(dims))
        {
            throw new ArgumentException(
                $"Tensor '{name}' of shape [{string.Join(",", dims)}] needs {ElementCountOf(dims)} strings, got {values.Length}.",
                nameof(values));
        }

        return new OnnxTensor(name, TensorElementKind.String, (long[])dims.Clone(), [], values.Select(v => (byte[])v.Clone()).ToArray());
    }

    /// <summary>
    /// Copies <see cref="Data"/> out as an array of <typeparamref name="T"/>, which must have the
    /// element size or divide it (e.g. <see cref="float"/> for FLOAT or COMPLEX64, <see cref="ushort"/> or
    /// <see cref="Half"/> for FLOAT16, <see cref="bool"/> or <see cref="byte"/> for BOOL).
    /// </summary>
    /// <exception cref="InvalidOperationException">The sizes do not match, or the tensor holds strings.</exception>
    public T[] ToArray<T>() where T : unmanaged
    {
        if (Type == TensorElementKind.String)
        {
            throw new InvalidOperationException("A STRING tensor has no element bytes; use ToStrings().");
        }

        if (Type.ElementSize() % Unsafe.SizeOf<T>() != 0)
        {
            throw new InvalidOperationException($"Cannot view {Type.OnnxName()} data as {typeof(T).Name}.");
        }

        return MemoryMarshal.Cast<byte, T>(Data).ToArray();
    }

    /// <summary>The elements of a STRING tensor decoded as UTF-8.</summary>
    /// <exception cref="InvalidOperationException">The tensor is not a STRING tensor.</exception>
    public string[] ToStrings() =>
        Strings?.Select(s => Encoding.UTF8.GetString(s)).ToArray()
        ?? throw new InvalidOperationException($"A {Type.OnnxName()} tensor holds no strings.");

    /// <summary>Value equality: name, type, shape and contents are compared element by element.</summary>
    public bool Equals(OnnxTensor? other) =>
        other is not null
        && Name == other.Name
        && Type == other.Type
        && Dims.AsSpan().SequenceEqual(other.Dims)
        && Data.AsSpan().SequenceEqual(other.Data)
        && (Strings is null
            ? other.Strings is null
            : other.Strings is not null
              && Strings.Length == other.Strings.Length
              && Strings.Zip(other.Strings).All(p => p.First.AsSpan().SequenceEqual(p.Second)));

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Name);
        hash.Add(Type);
        foreach (long d in Dims)
        {
            hash.Add(d);
        }

        hash.AddBytes(Data);
        return hash.ToHashCode();
    }

    /// <inheritdoc />
    public override string ToString() =>
        $"OnnxTensor {{ Name = {Name}, Type = {Type.OnnxName()}, Dims = [{string.Join(",", Dims)}], " +
        (Strings is null ? $"Data = {Data.Length} bytes }}" : $"Strings = {Strings.Length} }}");

    internal static long ElementCountOf(long[] dims)
    {
        long count = 1;
        foreach (long d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"Negative dimension {d} in a tensor shape.", nameof(dims));
            }

            count = checked(count * d);
        }

        return count;
    }

    private static TensorElementKind KindOf<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return TensorElementKind.Float;
        if (typeof(T) == typeof(byte)) return TensorElementKind.UInt8;
        if (typeof(T) == typeof(sbyte)) return TensorElementKind.Int8;
        if (typeof(T) == typeof(ushort)) return TensorElementKind.UInt16;
        if (typeof(T) == typeof(short)) return TensorElementKind.Int16;
        if (typeof(T) == typeof(int)) return TensorElementKind.Int32;
        if (typeof(T) == typeof(long)) return TensorElementKind.Int64;
        if (typeof(T) == typeof(bool)) return TensorElementKind.Bool;
        if (typeof(T) == typeof(Half)) return TensorElementKind.Float16;
        if (typeof(T) == typeof(double)) return TensorElementKind.Double;
        if (typeof(T) == typeof(uint)) return TensorElementKind.UInt32;
        if (typeof(T) == typeof(ulong)) return TensorElementKind.UInt64;
        throw new ArgumentException($"{typeof(T).Name} has no ONNX element type; pass the TensorElementKind explicitly.");
    }
}
