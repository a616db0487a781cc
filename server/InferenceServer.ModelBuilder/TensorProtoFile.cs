using System.Buffers.Binary;
using Google.Protobuf;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.ModelBuilder;

/// <summary>
/// Reads and writes serialized ONNX <c>TensorProto</c> messages, the format of the
/// <c>test_data_set_*/input_*.pb</c> and <c>output_*.pb</c> files of the ONNX test suite.
/// </summary>
public static class TensorProtoFile
{
    /// <summary>Reads a serialized <c>TensorProto</c> file.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid dense tensor.</exception>
    public static OnnxTensor Read(string path) => Parse(File.ReadAllBytes(path));

    /// <summary>Parses a serialized <c>TensorProto</c>.</summary>
    /// <exception cref="InvalidDataException">The bytes are not a valid dense tensor.</exception>
    public static OnnxTensor Parse(ReadOnlySpan<byte> bytes)
    {
        TensorProto proto;
        try
        {
            proto = TensorProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException("Not a serialized ONNX TensorProto.", e);
        }

        return FromProto(proto);
    }

    /// <summary>Writes <paramref name="tensor"/> as a serialized <c>TensorProto</c> (raw_data form, string_data for STRING).</summary>
    public static byte[] Write(OnnxTensor tensor) => ToProto(tensor).ToByteArray();

    /// <summary>Writes <paramref name="tensor"/> to <paramref name="path"/>, creating parent directories.</summary>
    public static void Save(OnnxTensor tensor, string path)
    {
        string? dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null)
        {
            Directory.CreateDirectory(dir);
        }

        File.WriteAllBytes(path, Write(tensor));
    }

    /// <summary>
    /// Converts a <c>TensorProto</c> into an <see cref="OnnxTensor"/>, gathering the element bytes from
    /// whichever field holds them: raw_data, float_data, int32_data (narrowed for BOOL, INT8, UINT8, INT16,
    /// UINT16, FLOAT16 and BFLOAT16), int64_data, double_data, uint64_data (narrowed for UINT32) or string_data.
    /// </summary>
    /// <exception cref="InvalidDataException">The element type is unknown or the data does not match the shape.</exception>
    public static OnnxTensor FromProto(TensorProto proto)
    {
        ArgumentNullException.ThrowIfNull(proto);
        var type = (TensorElementKind)proto.DataType;
        if (!Enum.IsDefined(type) || type == TensorElementKind.Undefined)
        {
            throw new InvalidDataException($"Tensor '{proto.Name}' has unsupported data_type {proto.DataType}.");
        }

        long[] dims = proto.Dims.ToArray();
        long count;
        try
        {
            count = OnnxTensor.ElementCountOf(dims);
        }
        catch (Exception e) when (e is ArgumentException or OverflowException)
        {
            throw new InvalidDataException($"Tensor '{proto.Name}' has an invalid shape [{string.Join(",", dims)}].", e);
        }

        if (type == TensorElementKind.String)
        {
            if (proto.StringData.Count != count)
            {
                throw new InvalidDataException($"STRING tensor '{proto.Name}' of shape [{string.Join(",", dims)}] has {proto.StringData.Count} strings.");
            }

            return new OnnxTensor(proto.Name, type, dims, [], proto.StringData.Select(s => s.ToByteArray()).ToArray());
        }

        int size = type.ElementSize();
        long byteCount = count * size;
        if (byteCount > Array.MaxLength)
        {
            throw new InvalidDataException($"Tensor '{proto.Name}' is too large ({byteCount} bytes).");
        }

        var data = new byte[byteCount];
        var dest = data.AsSpan();

        // Complex numbers take two typed values per element.
        int valuesPerElement = type is TensorElementKind.Complex64 or TensorElementKind.Complex128 ? 2 : 1;
        long valueCount = count * valuesPerElement;

        if (!proto.RawData.IsEmpty)
        {
            if (proto.RawData.Length != byteCount)
            {
                throw Mismatch(proto, type, dims, "raw_data", proto.RawData.Length, byteCount);
            }

            proto.RawData.Span.CopyTo(dest);
        }
        else if (count == 0)
        {
            // Nothing to read.
        }
        else if (proto.FloatData.Count > 0 && type is TensorElementKind.Float or TensorElementKind.Complex64)
        {
            CheckCount(proto, type, dims, "float_data", proto.FloatData.Count, valueCount);
            for (int i = 0; i < proto.FloatData.Count; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(dest[(i * 4)..], proto.FloatData[i]);
            }
        }
        else if (proto.DoubleData.Count > 0 && type is TensorElementKind.Double or TensorElementKind.Complex128)
        {
            CheckCount(proto, type, dims, "double_data", proto.DoubleData.Count, valueCount);
            for (int i = 0; i < proto.DoubleData.Count; i++)
            {
                BinaryPrimitives.WriteDoubleLittleEndian(dest[(i * 8)..], proto.DoubleData[i]);
            }
        }
        else if (proto.Int64Data.Count > 0 && type is TensorElementKind.Int64)
        {
            CheckCount(proto, type, dims, "int64_data", proto.Int64Data.Count, valueCount);
            for (int i = 0; i < proto.Int64Data.Count; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(dest[(i * 8)..], proto.Int64Data[i]);
            }
        }
        else if (proto.Uint64Data.Count > 0 && type is TensorElementKind.UInt64 or TensorElementKind.UInt32)
        {
            CheckCount(proto, type, dims, "uint64_data", proto.Uint64Data.Count, valueCount);
            for (int i = 0; i < proto.Uint64Data.Count; i++)
            {
                ulong v = proto.Uint64Data[i];
                if (size == 8)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(dest[(i * 8)..], v);
                }
                else
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(dest[(i * 4)..], unchecked((uint)v));
                }
            }
        }
        else if (proto.Int32Data.Count > 0 && type is TensorElementKind.Int32 or TensorElementKind.Int16
                     or TensorElementKind.Int8 or TensorElementKind.UInt16 or TensorElementKind.UInt8
                     or TensorElementKind.Bool or TensorElementKind.Float16 or TensorElementKind.BFloat16)
        {
            // One int32 per element; the element is its low `size` bytes (a bit pattern for FLOAT16/BFLOAT16).
            CheckCount(proto, type, dims, "int32_data", proto.Int32Data.Count, valueCount);
            for (int i = 0; i < proto.Int32Data.Count; i++)
            {
                int v = proto.Int32Data[i];
                switch (size)
                {
                    case 4:
                        BinaryPrimitives.WriteInt32LittleEndian(dest[(i * 4)..], v);
                        break;
                    case 2:
                        BinaryPrimitives.WriteUInt16LittleEndian(dest[(i * 2)..], unchecked((ushort)v));
                        break;
                    default:
                        dest[i] = type == TensorElementKind.Bool ? (byte)(v != 0 ? 1 : 0) : unchecked((byte)v);
                        break;
                }
            }
        }
        else
        {
            throw new InvalidDataException(
                $"Tensor '{proto.Name}' of type {type.OnnxName()} and shape [{string.Join(",", dims)}] has no data in a field that can hold it " +
                "(external data is not supported).");
        }

        return new OnnxTensor(proto.Name, type, dims, data, null);
    }

    /// <summary>Converts an <see cref="OnnxTensor"/> into a <c>TensorProto</c> (raw_data form, string_data for STRING).</summary>
    /// <exception cref="ArgumentException">The tensor's data does not match its type and shape.</exception>
    public static TensorProto ToProto(OnnxTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        long count = OnnxTensor.ElementCountOf(tensor.Dims);
        var proto = new TensorProto { Name = tensor.Name ?? "", DataType = (int)tensor.Type };
        proto.Dims.AddRange(tensor.Dims);
        if (tensor.Type == TensorElementKind.String)
        {
            if (tensor.Strings is null || tensor.Strings.Length != count)
            {
                throw new ArgumentException($"STRING tensor '{tensor.Name}' needs {count} strings.", nameof(tensor));
            }

            proto.StringData.AddRange(tensor.Strings.Select(ByteString.CopyFrom));
            return proto;
        }

        long expected = count * tensor.Type.ElementSize();
        if (tensor.Data.Length != expected)
        {
            throw new ArgumentException(
                $"Tensor '{tensor.Name}' of type {tensor.Type.OnnxName()} and shape [{string.Join(",", tensor.Dims)}] needs {expected} bytes, has {tensor.Data.Length}.",
                nameof(tensor));
        }

        proto.RawData = ByteString.CopyFrom(tensor.Data);
        return proto;
    }

    private static void CheckCount(TensorProto proto, TensorElementKind type, long[] dims, string field, int actual, long expected)
    {
        if (actual != expected)
        {
            throw Mismatch(proto, type, dims, field, actual, expected);
        }
    }

    private static InvalidDataException Mismatch(TensorProto proto, TensorElementKind type, long[] dims, string field, long actual, long expected) =>
        new($"Tensor '{proto.Name}' of type {type.OnnxName()} and shape [{string.Join(",", dims)}] has {actual} values in {field}, expected {expected}.");
}
