using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace InferenceServer.Client;

/// <summary>Tensors to and from the JSON <c>data</c> arrays of the REST protocol.</summary>
internal static class JsonTensorCodec
{

    /// <summary>Whether every element of a BYTES tensor is valid UTF-8 (else it can only travel as binary).</summary>
    public static bool IsValidUtf8(Tensor tensor) => tensor.ToByteArrays().All(e => Utf8.IsValid(e));

    public static void WriteData(Utf8JsonWriter w, Tensor t)
    {
        w.WriteStartArray();
        switch (t.Datatype)
        {
            case DataType.Bool: foreach (var v in t.AsSpan<bool>()) { w.WriteBooleanValue(v); } break;
            case DataType.UInt8: foreach (var v in t.AsSpan<byte>()) { w.WriteNumberValue(v); } break;
            case DataType.UInt16: foreach (var v in t.AsSpan<ushort>()) { w.WriteNumberValue(v); } break;
            case DataType.UInt32: foreach (var v in t.AsSpan<uint>()) { w.WriteNumberValue(v); } break;
            case DataType.UInt64: foreach (var v in t.AsSpan<ulong>()) { w.WriteNumberValue(v); } break;
            case DataType.Int8: foreach (var v in t.AsSpan<sbyte>()) { w.WriteNumberValue(v); } break;
            case DataType.Int16: foreach (var v in t.AsSpan<short>()) { w.WriteNumberValue(v); } break;
            case DataType.Int32: foreach (var v in t.AsSpan<int>()) { w.WriteNumberValue(v); } break;
            case DataType.Int64: foreach (var v in t.AsSpan<long>()) { w.WriteNumberValue(v); } break;
            case DataType.Fp16: foreach (var v in t.AsSpan<Half>()) { WriteFloat(w, (float)v); } break;
            case DataType.Fp32: foreach (var v in t.AsSpan<float>()) { WriteFloat(w, v); } break;
            case DataType.Fp64:
                foreach (var v in t.AsSpan<double>())
                {
                    if (double.IsFinite(v)) { w.WriteNumberValue(v); } else { w.WriteStringValue(NonFinite(v)); }
                }
                break;
            case DataType.Bytes: foreach (var v in t.ToByteArrays()) { w.WriteStringValue(Encoding.UTF8.GetString(v)); } break;
            default: throw new InvalidOperationException($"input '{t.Name}': {t.Datatype} has no JSON form; send it as binary data");
        }
        w.WriteEndArray();
    }

    private static void WriteFloat(Utf8JsonWriter w, float v)
    {
        if (float.IsFinite(v)) { w.WriteNumberValue(v); } else { w.WriteStringValue(NonFinite(v)); }
    }

    private static string NonFinite(double v) => double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";

    /// <summary>A tensor from a JSON <c>data</c> array (flat or nested); a null shape is one dimension of all the values.</summary>
    public static Tensor ReadData(string name, string datatype, IReadOnlyList<long>? shape, JsonElement data)
    {
        var values = new List<JsonElement>();
        Flatten(data, values);
        long[] dims = shape?.ToArray() ?? [values.Count];
        if (datatype == DataType.Bytes)
        {
            return Tensor.FromByteArrays(name, values.Select(v => v.ValueKind == JsonValueKind.String
                ? Encoding.UTF8.GetBytes(v.GetString()!)
                : Encoding.UTF8.GetBytes(v.GetRawText())), dims);
        }
        var size = DataType.ElementSize(datatype);
        Tensor.CheckCount(name, dims, values.Count);
        var raw = new byte[values.Count * size];
        for (var i = 0; i < values.Count; i++)
        {
            var dest = raw.AsSpan(i * size, size);
            var v = values[i];
            try
            {
                switch (datatype)
                {
                    case DataType.Bool: dest[0] = ReadBool(v); break;
                    case DataType.UInt8: dest[0] = v.GetByte(); break;
                    case DataType.Int8: dest[0] = unchecked((byte)v.GetSByte()); break;
                    case DataType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(dest, v.GetUInt16()); break;
                    case DataType.Int16: BinaryPrimitives.WriteInt16LittleEndian(dest, v.GetInt16()); break;
                    case DataType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(dest, v.GetUInt32()); break;
                    case DataType.Int32: BinaryPrimitives.WriteInt32LittleEndian(dest, v.GetInt32()); break;
                    case DataType.UInt64: BinaryPrimitives.WriteUInt64LittleEndian(dest, v.GetUInt64()); break;
                    case DataType.Int64: BinaryPrimitives.WriteInt64LittleEndian(dest, v.GetInt64()); break;
                    case DataType.Fp16: BinaryPrimitives.WriteHalfLittleEndian(dest, (Half)ReadDouble(v)); break;
                    case DataType.Fp32: BinaryPrimitives.WriteSingleLittleEndian(dest, v.ValueKind == JsonValueKind.String ? (float)ReadDouble(v) : v.GetSingle()); break;
                    case DataType.Fp64: BinaryPrimitives.WriteDoubleLittleEndian(dest, ReadDouble(v)); break;
                    case DataType.Bf16: BinaryPrimitives.WriteUInt16LittleEndian(dest, BFloat16.FromSingle((float)ReadDouble(v)).Bits); break;
                    default: throw new ArgumentException($"tensor '{name}' has the unknown datatype '{datatype}'", nameof(datatype));
                }
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new FormatException($"element {i}: {v.GetRawText()} is not a valid {datatype} value", e);
            }
        }
        return Tensor.FromRaw(name, datatype, dims, raw);
    }

    private static byte ReadBool(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.True => 1,
        JsonValueKind.False => 0,
        JsonValueKind.Number when v.GetInt32() is 0 or 1 => (byte)v.GetInt32(),
        _ => throw new FormatException($"expected true or false, got {v.GetRawText()}"),
    };

    private static double ReadDouble(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Number => v.GetDouble(),
        JsonValueKind.String => v.GetString() switch
        {
            "NaN" or "nan" => double.NaN,
            "Infinity" or "inf" => double.PositiveInfinity,
            "-Infinity" or "-inf" => double.NegativeInfinity,
            var s => double.Parse(s!, System.Globalization.CultureInfo.InvariantCulture),
        },
        _ => throw new FormatException($"expected a number, got {v.GetRawText()}"),
    };

    private static void Flatten(JsonElement element, List<JsonElement> values)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray())
            {
                Flatten(item, values);
            }
        }
        else
        {
            values.Add(element);
        }
    }
}
