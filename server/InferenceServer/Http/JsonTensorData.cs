using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using InferenceServer.Inference;
using InferenceServer.Tensors;

namespace InferenceServer.Http;

/// <summary>Tensor elements to and from JSON arrays (flat or nested), written straight into pooled buffers.</summary>
internal static class JsonTensorData
{
    /// <summary>Counts the scalar elements of a (possibly nested) JSON array, so the buffer is sized once and the count checked before anything is decoded.</summary>
    public static long CountElements(JsonElement element)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            return 1;
        }
        long count = 0;
        foreach (var child in element.EnumerateArray())
        {
            count += child.ValueKind == JsonValueKind.Array ? CountElements(child) : 1;
        }
        return count;
    }

    /// <summary>Decodes <paramref name="data"/> into a buffer of <paramref name="type"/> elements; the caller has checked the element count.</summary>
    public static TensorBuffer Decode(string name, DataType type, JsonElement data, long count)
    {
        using var writer = new TensorWriter(type, count);
        DecodeInto(name, writer, data);
        return writer.Detach();
    }

    /// <summary>Appends the elements of <paramref name="data"/> to <paramref name="writer"/>.</summary>
    public static void DecodeInto(string name, TensorWriter writer, JsonElement data)
    {
        if (writer.DataType == DataType.Bf16)
        {
            throw InferenceException.InvalidArgument($"input '{name}': BF16 has no JSON representation; send it as binary data (binary_data_size)");
        }
        WriteElements(name, writer, data);
    }

    private static void WriteElements(string name, TensorWriter writer, JsonElement element)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var child in element.EnumerateArray())
            {
                WriteElements(name, writer, child);
            }
            return;
        }
        if (!TryWriteScalar(writer, element))
        {
            var raw = element.GetRawText();
            throw InferenceException.InvalidArgument(
                $"input '{name}': element {writer.Count} ({(raw.Length > 40 ? raw[..40] + "..." : raw)}) is not a valid {writer.DataType.Name()} value");
        }
    }

    private static bool TryWriteScalar(TensorWriter w, JsonElement e)
    {
        var kind = e.ValueKind;
        switch (w.DataType)
        {
            case DataType.Bool:
                if (kind is JsonValueKind.True or JsonValueKind.False)
                {
                    w.Write((byte)(kind == JsonValueKind.True ? 1 : 0));
                    return true;
                }
                return false;
            case DataType.Bytes:
                if (kind != JsonValueKind.String)
                {
                    return false;
                }
                var raw = JsonMarshal.GetRawUtf8Value(e);
                if (raw.IndexOf((byte)'\\') < 0)
                {
                    w.WriteBytes(raw[1..^1]);
                }
                else
                {
                    w.WriteBytes(Encoding.UTF8.GetBytes(e.GetString()!));
                }
                return true;
        }
        if (kind == JsonValueKind.String && w.DataType is DataType.Fp16 or DataType.Fp32 or DataType.Fp64)
        {
            if (!TryParseNonFinite(e, out var special))
            {
                return false;
            }
            WriteFloat(w, special);
            return true;
        }
        if (kind != JsonValueKind.Number)
        {
            return false;
        }
        switch (w.DataType)
        {
            case DataType.UInt8 when e.TryGetByte(out var v): w.Write(v); return true;
            case DataType.Int8 when e.TryGetSByte(out var v): w.Write(v); return true;
            case DataType.UInt16 when e.TryGetUInt16(out var v): w.Write(v); return true;
            case DataType.Int16 when e.TryGetInt16(out var v): w.Write(v); return true;
            case DataType.UInt32 when e.TryGetUInt32(out var v): w.Write(v); return true;
            case DataType.Int32 when e.TryGetInt32(out var v): w.Write(v); return true;
            case DataType.UInt64 when e.TryGetUInt64(out var v): w.Write(v); return true;
            case DataType.Int64 when e.TryGetInt64(out var v): w.Write(v); return true;
            case DataType.Fp16 or DataType.Fp32 or DataType.Fp64 when e.TryGetDouble(out var v): WriteFloat(w, v); return true;
            default: return false;
        }
    }

    private static void WriteFloat(TensorWriter w, double value)
    {
        switch (w.DataType)
        {
            case DataType.Fp16: w.Write((Half)value); break;
            case DataType.Fp32: w.Write((float)value); break;
            default: w.Write(value); break;
        }
    }

    private static bool TryParseNonFinite(JsonElement e, out double value)
    {
        value = e.ValueEquals("NaN") ? double.NaN
            : e.ValueEquals("Infinity") || e.ValueEquals("inf") ? double.PositiveInfinity
            : e.ValueEquals("-Infinity") || e.ValueEquals("-inf") ? double.NegativeInfinity
            : 0;
        return value != 0;
    }

    /// <summary>Writes a tensor's elements as a flat JSON array.</summary>
    public static void Encode(Utf8JsonWriter writer, Tensor tensor)
    {
        var cursor = new ElementCursor(tensor);
        writer.WriteStartArray();
        for (var i = 0L; i < cursor.Count; i++)
        {
            cursor.WriteNext(writer);
        }
        writer.WriteEndArray();
    }

    /// <summary>Writes the next elements of <paramref name="cursor"/> as nested arrays of shape <paramref name="dims"/> (a scalar when empty).</summary>
    public static void EncodeNested(Utf8JsonWriter writer, ref ElementCursor cursor, ReadOnlySpan<long> dims)
    {
        if (dims.IsEmpty)
        {
            cursor.WriteNext(writer);
            return;
        }
        writer.WriteStartArray();
        for (var i = 0L; i < dims[0]; i++)
        {
            EncodeNested(writer, ref cursor, dims[1..]);
        }
        writer.WriteEndArray();
    }

    /// <summary>Walks a tensor's elements in order, writing each as a JSON value.</summary>
    public struct ElementCursor
    {
        private readonly Tensor _tensor;
        private int _index;
        private int _byteOffset;

        public ElementCursor(Tensor tensor)
        {
            _tensor = tensor;
            var size = tensor.DataType.ElementSize();
            if (size > 0)
            {
                Count = tensor.Data.Length / size;
            }
            else
            {
                BytesElements.TryCount(tensor.Data.Span, out var count);
                Count = count;
            }
        }

        public long Count { get; }

        public void WriteNext(Utf8JsonWriter writer)
        {
            var i = _index++;
            switch (_tensor.DataType)
            {
                case DataType.Bool: writer.WriteBooleanValue(_tensor.Data.Span[i] != 0); break;
                case DataType.UInt8: writer.WriteNumberValue(_tensor.Data.Span[i]); break;
                case DataType.Int8: writer.WriteNumberValue(_tensor.Elements<sbyte>()[i]); break;
                case DataType.UInt16: writer.WriteNumberValue(_tensor.Elements<ushort>()[i]); break;
                case DataType.Int16: writer.WriteNumberValue(_tensor.Elements<short>()[i]); break;
                case DataType.UInt32: writer.WriteNumberValue(_tensor.Elements<uint>()[i]); break;
                case DataType.Int32: writer.WriteNumberValue(_tensor.Elements<int>()[i]); break;
                case DataType.UInt64: writer.WriteNumberValue(_tensor.Elements<ulong>()[i]); break;
                case DataType.Int64: writer.WriteNumberValue(_tensor.Elements<long>()[i]); break;
                case DataType.Fp16: WriteNumber(writer, (float)_tensor.Elements<Half>()[i]); break;
                case DataType.Fp32: WriteNumber(writer, _tensor.Elements<float>()[i]); break;
                case DataType.Fp64: WriteNumber(writer, _tensor.Elements<double>()[i]); break;
                case DataType.Bytes:
                    ReadOnlySpan<byte> rest = _tensor.Data.Span[_byteOffset..];
                    var element = BytesElements.ReadNext(ref rest);
                    _byteOffset += 4 + element.Length;
                    if (Utf8.IsValid(element))
                    {
                        writer.WriteStringValue(element);
                    }
                    else
                    {
                        writer.WriteStringValue(Encoding.UTF8.GetString(element));
                    }
                    break;
                default:
                    throw new InvalidOperationException($"{_tensor.DataType.Name()} has no JSON form");
            }
        }
    }

    private static void WriteNumber(Utf8JsonWriter writer, float value)
    {
        if (float.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            WriteNonFinite(writer, value);
        }
    }

    private static void WriteNumber(Utf8JsonWriter writer, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumberValue(value);
        }
        else
        {
            WriteNonFinite(writer, value);
        }
    }

    private static void WriteNonFinite(Utf8JsonWriter writer, double value) =>
        writer.WriteStringValue(double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
}
