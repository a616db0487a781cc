using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Client;

/// <summary>
/// A named tensor: an input of a request or an output of a response. Fixed-size elements are held as their
/// little-endian bytes in row-major order (the protocol's raw form); <see cref="DataType.Bytes"/> elements as one byte
/// array each. Build one with <see cref="Create{T}(string, ReadOnlySpan{T}, long[])"/>,
/// <see cref="FromStrings"/> or <see cref="FromByteArrays"/>; read it with <see cref="AsSpan{T}"/>,
/// <see cref="ToArray{T}"/>, <see cref="ToStrings"/> or <see cref="ToByteArrays"/>.
/// </summary>
public sealed class Tensor
{
    private readonly byte[]? _raw;
    private readonly IReadOnlyList<byte[]>? _elements;

    private Tensor(string name, string datatype, long[] shape, byte[]? raw, IReadOnlyList<byte[]>? elements)
    {
        Name = name;
        Datatype = datatype;
        Shape = shape;
        _raw = raw;
        _elements = elements;
    }

    /// <summary>The input's or output's name.</summary>
    public string Name { get; }

    /// <summary>The protocol datatype (see <see cref="DataType"/>).</summary>
    public string Datatype { get; }

    /// <summary>The shape; its product is <see cref="ElementCount"/>.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>The number of elements.</summary>
    public long ElementCount => ElementCountOf(Shape);

    /// <summary>A tensor of <paramref name="values"/> with <paramref name="shape"/> (row-major).</summary>
    /// <exception cref="ArgumentException">The shape does not hold that many values, or <typeparamref name="T"/> is not an element type.</exception>
    public static Tensor Create<T>(string name, ReadOnlySpan<T> values, params long[] shape) where T : unmanaged
    {
        var datatype = DataType.Of<T>();
        CheckCount(name, shape, values.Length);
        var raw = MemoryMarshal.AsBytes(values).ToArray();
        if (typeof(T) == typeof(bool))
        {
            // A bool is one byte in .NET, but only 0 or 1 are valid on the wire.
            for (var i = 0; i < raw.Length; i++)
            {
                raw[i] = raw[i] == 0 ? (byte)0 : (byte)1;
            }
        }
        return new Tensor(name, datatype, shape, ToLittleEndian(raw, DataType.ElementSize(datatype)), null);
    }

    /// <summary>A tensor of <paramref name="values"/> with <paramref name="shape"/> (row-major).</summary>
    public static Tensor Create<T>(string name, T[] values, params long[] shape) where T : unmanaged =>
        Create<T>(name, values.AsSpan(), shape);

    /// <summary>A one-dimensional tensor of <paramref name="values"/>.</summary>
    public static Tensor Create<T>(string name, T[] values) where T : unmanaged => Create<T>(name, values.AsSpan(), values.Length);

    /// <summary>A <see cref="DataType.Bytes"/> tensor of UTF-8 strings.</summary>
    /// <exception cref="ArgumentException">The shape does not hold that many values.</exception>
    public static Tensor FromStrings(string name, IEnumerable<string> values, params long[] shape)
    {
        var elements = values.Select(Encoding.UTF8.GetBytes).ToArray();
        return FromByteArrays(name, elements, shape.Length == 0 ? [elements.Length] : shape);
    }

    /// <summary>A <see cref="DataType.Bytes"/> tensor of byte strings.</summary>
    /// <exception cref="ArgumentException">The shape does not hold that many values.</exception>
    public static Tensor FromByteArrays(string name, IEnumerable<byte[]> values, params long[] shape)
    {
        var elements = values.Select(v => v.ToArray()).ToArray();
        shape = shape.Length == 0 ? [elements.Length] : shape;
        CheckCount(name, shape, elements.Length);
        return new Tensor(name, DataType.Bytes, shape, null, elements);
    }

    /// <summary>
    /// A tensor from its raw little-endian bytes (for <see cref="DataType.Bytes"/>: each element a 4-byte little-endian
    /// length, then the bytes), as the binary data extension and gRPC's raw contents carry it.
    /// </summary>
    /// <exception cref="ArgumentException">The bytes do not hold exactly the shape's elements, or the datatype is unknown.</exception>
    public static Tensor FromRaw(string name, string datatype, IReadOnlyList<long> shape, ReadOnlySpan<byte> raw)
    {
        var shapeArray = shape.ToArray();
        var count = ElementCountOf(shapeArray);
        var size = DataType.ElementSize(datatype);
        if (size == 0)
        {
            var elements = new List<byte[]>();
            var rest = raw;
            while (rest.Length > 0)
            {
                if (rest.Length < 4)
                {
                    throw new ArgumentException($"tensor '{name}': BYTES data ends inside an element's 4-byte length");
                }
                var length = BinaryPrimitives.ReadUInt32LittleEndian(rest);
                if (length > rest.Length - 4)
                {
                    throw new ArgumentException($"tensor '{name}': a BYTES element claims {length} bytes but only {rest.Length - 4} are left");
                }
                elements.Add(rest.Slice(4, (int)length).ToArray());
                rest = rest[(4 + (int)length)..];
            }
            CheckCount(name, shapeArray, elements.Count);
            return new Tensor(name, datatype, shapeArray, null, elements);
        }
        if (raw.Length != count * size)
        {
            throw new ArgumentException(
                $"tensor '{name}' ({datatype}, shape [{string.Join(",", shapeArray)}]) needs {count * size} bytes of data but has {raw.Length}");
        }
        return new Tensor(name, datatype, shapeArray, raw.ToArray(), null);
    }

    /// <summary>
    /// A tensor from the JSON <c>data</c> array of the REST protocol (flat or nested, row-major): numbers, <c>true</c>/<c>false</c>
    /// (or 0/1) for <see cref="DataType.Bool"/>, strings for <see cref="DataType.Bytes"/>, and <c>"NaN"</c>,
    /// <c>"Infinity"</c> or <c>"-Infinity"</c> for floating-point values that are not finite.
    /// </summary>
    /// <param name="name">The tensor's name.</param>
    /// <param name="datatype">The protocol datatype (see <see cref="DataType"/>).</param>
    /// <param name="shape">The shape, or <see langword="null"/> for one dimension of all the values.</param>
    /// <param name="data">The <c>data</c> array.</param>
    /// <exception cref="ArgumentException">The datatype is unknown, or the shape does not hold that many values.</exception>
    /// <exception cref="FormatException">A value does not fit the datatype (the message names the element).</exception>
    public static Tensor FromJsonData(string name, string datatype, IReadOnlyList<long>? shape, JsonElement data) =>
        JsonTensorCodec.ReadData(name, datatype, shape, data);

    /// <summary>The same datatype, shape and values under another name (the values are shared, not copied).</summary>
    public Tensor WithName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new Tensor(name, Datatype, (long[])Shape, _raw, _elements);
    }

    /// <summary>The elements as a span of <typeparamref name="T"/> (no copy on little-endian machines).</summary>
    /// <exception cref="InvalidOperationException"><typeparamref name="T"/> does not match <see cref="Datatype"/>.</exception>
    public ReadOnlySpan<T> AsSpan<T>() where T : unmanaged
    {
        var wanted = DataType.Of<T>();
        if (wanted != Datatype)
        {
            throw new InvalidOperationException(
                $"tensor '{Name}' holds {Datatype} elements, not {wanted} ({typeof(T).Name}); read it as {DescribeElementType(Datatype)}");
        }
        return MemoryMarshal.Cast<byte, T>(FromLittleEndian(_raw!, DataType.ElementSize(Datatype)));
    }

    /// <summary>The elements as a new array of <typeparamref name="T"/>.</summary>
    /// <exception cref="InvalidOperationException"><typeparamref name="T"/> does not match <see cref="Datatype"/>.</exception>
    public T[] ToArray<T>() where T : unmanaged => AsSpan<T>().ToArray();

    /// <summary>The elements of a <see cref="DataType.Bytes"/> tensor, decoded as UTF-8.</summary>
    /// <exception cref="InvalidOperationException">The tensor is not <see cref="DataType.Bytes"/>.</exception>
    public string[] ToStrings() => ToByteArrays().Select(e => Encoding.UTF8.GetString(e)).ToArray();

    /// <summary>The elements of a <see cref="DataType.Bytes"/> tensor.</summary>
    /// <exception cref="InvalidOperationException">The tensor is not <see cref="DataType.Bytes"/>.</exception>
    public IReadOnlyList<byte[]> ToByteArrays()
    {
        if (_elements is null)
        {
            throw new InvalidOperationException($"tensor '{Name}' holds {Datatype} elements, not BYTES; read it as {DescribeElementType(Datatype)}");
        }
        return _elements;
    }

    /// <summary>The raw little-endian bytes (BYTES: length-prefixed elements), as the binary extension and gRPC carry them.</summary>
    public byte[] ToRawBytes()
    {
        if (_raw is not null)
        {
            return _raw;
        }
        var buffer = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        foreach (var element in _elements!)
        {
            BinaryPrimitives.WriteInt32LittleEndian(length, element.Length);
            buffer.Write(length);
            buffer.Write(element);
        }
        return buffer.ToArray();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Name}: {Datatype} [{string.Join(",", Shape)}]";

    internal static long ElementCountOf(IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentException($"shape [{string.Join(",", shape)}] has a negative dimension");
            }
            count = checked(count * dim);
        }
        return count;
    }

    internal static void CheckCount(string name, IReadOnlyList<long> shape, long count)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        var expected = ElementCountOf(shape);
        if (expected != count)
        {
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(",", shape)}] holds {expected} elements but {count} were given");
        }
    }

    private static string DescribeElementType(string datatype) => datatype switch
    {
        DataType.Bytes => "strings (ToStrings) or byte arrays (ToByteArrays)",
        DataType.Bool => "bool", DataType.UInt8 => "byte", DataType.UInt16 => "ushort", DataType.UInt32 => "uint",
        DataType.UInt64 => "ulong", DataType.Int8 => "sbyte", DataType.Int16 => "short", DataType.Int32 => "int",
        DataType.Int64 => "long", DataType.Fp16 => "Half", DataType.Bf16 => "BFloat16", DataType.Fp32 => "float",
        DataType.Fp64 => "double", _ => "an unknown type",
    };

    private static byte[] ToLittleEndian(byte[] raw, int size) => FromLittleEndian(raw, size);

    private static byte[] FromLittleEndian(byte[] raw, int size)
    {
        if (BitConverter.IsLittleEndian || size == 1)
        {
            return raw;
        }
        var swapped = (byte[])raw.Clone();
        for (var i = 0; i < swapped.Length; i += size)
        {
            Array.Reverse(swapped, i, size);
        }
        return swapped;
    }
}
