using System.Buffers.Binary;
using System.Text;
using InferenceServer.ModelBuilder;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>
/// A tensor as the protocol names it, with its elements in the protocol's raw form (little-endian; BYTES as
/// 4-byte length + bytes). Every encoding the tests use converts to and from this, so results compare uniformly.
/// </summary>
public sealed record WireTensor(string Name, string Datatype, long[] Shape, byte[] Data)
{
    public static string DatatypeOf(TensorElementKind kind) => kind switch
    {
        TensorElementKind.Float => "FP32",
        TensorElementKind.UInt8 => "UINT8",
        TensorElementKind.Int8 => "INT8",
        TensorElementKind.UInt16 => "UINT16",
        TensorElementKind.Int16 => "INT16",
        TensorElementKind.Int32 => "INT32",
        TensorElementKind.Int64 => "INT64",
        TensorElementKind.String => "BYTES",
        TensorElementKind.Bool => "BOOL",
        TensorElementKind.Float16 => "FP16",
        TensorElementKind.Double => "FP64",
        TensorElementKind.UInt32 => "UINT32",
        TensorElementKind.UInt64 => "UINT64",
        TensorElementKind.BFloat16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    public static int ElementSize(string datatype) => datatype switch
    {
        "BOOL" or "UINT8" or "INT8" => 1,
        "UINT16" or "INT16" or "FP16" or "BF16" => 2,
        "UINT32" or "INT32" or "FP32" => 4,
        "UINT64" or "INT64" or "FP64" => 8,
        _ => 0,
    };

    /// <summary>An FP32 tensor.</summary>
    public static WireTensor FromFloats(string name, long[] shape, float[] values) =>
        new(name, "FP32", shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    /// <summary>The elements of an FP32 tensor.</summary>
    public float[] AsFloats() => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Data).ToArray();

    /// <summary>From an ONNX TensorProto (golden data), renamed to the model's tensor name.</summary>
    public static WireTensor FromOnnx(OnnxTensor tensor, string name) =>
        tensor.Type == TensorElementKind.String
            ? new WireTensor(name, "BYTES", tensor.Dims, EncodeBytes(tensor.Strings!))
            : new WireTensor(name, DatatypeOf(tensor.Type), tensor.Dims, tensor.Data);

    public static byte[] EncodeBytes(IEnumerable<byte[]> elements)
    {
        var stream = new MemoryStream();
        Span<byte> prefix = stackalloc byte[4];
        foreach (var e in elements)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(prefix, (uint)e.Length);
            stream.Write(prefix);
            stream.Write(e);
        }
        return stream.ToArray();
    }

    public static byte[] EncodeStrings(params string[] elements) => EncodeBytes(elements.Select(Encoding.UTF8.GetBytes));

    public List<byte[]> BytesElements()
    {
        var list = new List<byte[]>();
        for (var offset = 0; offset < Data.Length;)
        {
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(Data.AsSpan(offset));
            list.Add(Data.AsSpan(offset + 4, length).ToArray());
            offset += 4 + length;
        }
        return list;
    }

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Every element as a double (numeric types), for comparison with tolerance.</summary>
    public double[] ToDoubles()
    {
        var span = Data.AsSpan();
        var n = Datatype == "BYTES" ? 0 : Data.Length / ElementSize(Datatype);
        var result = new double[n];
        for (var i = 0; i < n; i++)
        {
            result[i] = Datatype switch
            {
                "BOOL" or "UINT8" => span[i],
                "INT8" => (sbyte)span[i],
                "UINT16" => BinaryPrimitives.ReadUInt16LittleEndian(span[(i * 2)..]),
                "INT16" => BinaryPrimitives.ReadInt16LittleEndian(span[(i * 2)..]),
                "FP16" => (double)BinaryPrimitives.ReadHalfLittleEndian(span[(i * 2)..]),
                "BF16" => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(span[(i * 2)..]) << 16),
                "UINT32" => BinaryPrimitives.ReadUInt32LittleEndian(span[(i * 4)..]),
                "INT32" => BinaryPrimitives.ReadInt32LittleEndian(span[(i * 4)..]),
                "FP32" => BinaryPrimitives.ReadSingleLittleEndian(span[(i * 4)..]),
                "UINT64" => BinaryPrimitives.ReadUInt64LittleEndian(span[(i * 8)..]),
                "INT64" => BinaryPrimitives.ReadInt64LittleEndian(span[(i * 8)..]),
                "FP64" => BinaryPrimitives.ReadDoubleLittleEndian(span[(i * 8)..]),
                _ => throw new InvalidOperationException(Datatype),
            };
        }
        return result;
    }

    /// <summary>Null when <paramref name="actual"/> matches this (expected) tensor within rtol/atol; otherwise what differs.</summary>
    public string? Compare(WireTensor actual, double rtol = 1e-3, double atol = 1e-5)
    {
        if (actual.Datatype != Datatype)
        {
            return $"{Name}: datatype {actual.Datatype}, expected {Datatype}";
        }
        if (!actual.Shape.SequenceEqual(Shape))
        {
            return $"{Name}: shape [{string.Join(",", actual.Shape)}], expected [{string.Join(",", Shape)}]";
        }
        if (Datatype == "BYTES")
        {
            var a = actual.BytesElements();
            var e = BytesElements();
            return a.Count == e.Count && a.Zip(e).All(p => p.First.AsSpan().SequenceEqual(p.Second))
                ? null
                : $"{Name}: strings [{string.Join("|", a.Select(Encoding.UTF8.GetString))}], expected [{string.Join("|", e.Select(Encoding.UTF8.GetString))}]";
        }
        var actualValues = actual.ToDoubles();
        var expectedValues = ToDoubles();
        if (actualValues.Length != expectedValues.Length)
        {
            return $"{Name}: {actualValues.Length} elements, expected {expectedValues.Length}";
        }
        for (var i = 0; i < expectedValues.Length; i++)
        {
            double x = actualValues[i], y = expectedValues[i];
            var same = (double.IsNaN(x) && double.IsNaN(y)) || x == y || Math.Abs(x - y) <= atol + rtol * Math.Abs(y);
            if (!same)
            {
                return $"{Name}: element {i} is {x}, expected {y}";
            }
        }
        return null;
    }
}
