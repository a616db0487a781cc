using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace InferenceServer.Client.Cli.Tensors;

/// <summary>A tensor's elements as text for printing, and as JSON-ready values.</summary>
internal static class ElementFormat
{
    /// <summary>The element at <paramref name="index"/> as text (numbers invariant, NaN/Infinity as in JSON, BYTES as UTF-8 when valid).</summary>
    public static string FormatElement(Tensor tensor, int index)
    {
        if (tensor.Datatype == DataType.Bytes)
        {
            return BytesAsText(tensor.ToByteArrays()[index]);
        }
        var size = DataType.ElementSize(tensor.Datatype);
        var span = tensor.ToRawBytes().AsSpan(index * size, size);
        return tensor.Datatype switch
        {
            "BOOL" => span[0] != 0 ? "true" : "false",
            "UINT8" => span[0].ToString(CultureInfo.InvariantCulture),
            "UINT16" => BinaryPrimitives.ReadUInt16LittleEndian(span).ToString(CultureInfo.InvariantCulture),
            "UINT32" => BinaryPrimitives.ReadUInt32LittleEndian(span).ToString(CultureInfo.InvariantCulture),
            "UINT64" => BinaryPrimitives.ReadUInt64LittleEndian(span).ToString(CultureInfo.InvariantCulture),
            "INT8" => ((sbyte)span[0]).ToString(CultureInfo.InvariantCulture),
            "INT16" => BinaryPrimitives.ReadInt16LittleEndian(span).ToString(CultureInfo.InvariantCulture),
            "INT32" => BinaryPrimitives.ReadInt32LittleEndian(span).ToString(CultureInfo.InvariantCulture),
            "INT64" => BinaryPrimitives.ReadInt64LittleEndian(span).ToString(CultureInfo.InvariantCulture),
            "FP16" => FormatFloat((double)BinaryPrimitives.ReadHalfLittleEndian(span)),
            "BF16" => FormatFloat(new BFloat16(BinaryPrimitives.ReadUInt16LittleEndian(span)).ToSingle()),
            "FP32" => FormatFloat(BinaryPrimitives.ReadSingleLittleEndian(span)),
            "FP64" => FormatFloat(BinaryPrimitives.ReadDoubleLittleEndian(span)),
            _ => throw new CliInputException($"unknown datatype '{tensor.Datatype}'"),
        };
    }

    /// <summary>The element as a JSON-ready value (number, bool or string).</summary>
    public static object JsonElementValue(Tensor tensor, int index)
    {
        var text = FormatElement(tensor, index);
        return tensor.Datatype switch
        {
            "BYTES" => text,
            "BOOL" => text == "true",
            "FP16" or "BF16" or "FP32" or "FP64" => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) ? d : text,
            "UINT64" => ulong.Parse(text, CultureInfo.InvariantCulture),
            _ => long.Parse(text, CultureInfo.InvariantCulture),
        };
    }

    private static string FormatFloat(double value) => value switch
    {
        double.NaN => "NaN",
        double.PositiveInfinity => "Infinity",
        double.NegativeInfinity => "-Infinity",
        _ => value.ToString("R", CultureInfo.InvariantCulture),
    };

    private static string FormatFloat(float value) => float.IsFinite(value) ? value.ToString("R", CultureInfo.InvariantCulture) : FormatFloat((double)value);

    private static string BytesAsText(byte[] bytes)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return "0x" + Convert.ToHexString(bytes);
        }
    }
}
