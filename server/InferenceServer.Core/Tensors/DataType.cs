namespace InferenceServer.Tensors;

/// <summary>The tensor element types of the Open Inference Protocol v2.</summary>
public enum DataType
{
    /// <summary>Not a valid type; the default of an uninitialised value.</summary>
    Invalid = 0,
    /// <summary>Boolean, one byte per element (0 or 1).</summary>
    Bool,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64,
    /// <summary>Signed 8-bit integer.</summary>
    Int8,
    /// <summary>Signed 16-bit integer.</summary>
    Int16,
    /// <summary>Signed 32-bit integer.</summary>
    Int32,
    /// <summary>Signed 64-bit integer.</summary>
    Int64,
    /// <summary>IEEE 754 half precision.</summary>
    Fp16,
    /// <summary>bfloat16 (the upper half of an IEEE single).</summary>
    Bf16,
    /// <summary>IEEE 754 single precision.</summary>
    Fp32,
    /// <summary>IEEE 754 double precision.</summary>
    Fp64,
    /// <summary>Variable-length byte strings.</summary>
    Bytes,
}

/// <summary>Names, sizes and parsing of <see cref="DataType"/>.</summary>
public static class DataTypes
{
    private static readonly string[] Names =
        ["INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "BF16", "FP32", "FP64", "BYTES"];

    /// <summary>Every valid data type.</summary>
    public static IReadOnlyList<DataType> All { get; } = Enum.GetValues<DataType>().Where(t => t != DataType.Invalid).ToArray();

    /// <summary>The protocol name ("FP32", "BYTES", ...).</summary>
    public static string Name(this DataType type) => Names[(int)type];

    /// <summary>The model-configuration name ("TYPE_FP32", "TYPE_STRING", ...), as Triton spells it.</summary>
    public static string ConfigName(this DataType type) => type == DataType.Bytes ? "TYPE_STRING" : "TYPE_" + Names[(int)type];

    /// <summary>Bytes per element; 0 for <see cref="DataType.Bytes"/>, whose elements vary in length.</summary>
    public static int ElementSize(this DataType type) => type switch
    {
        DataType.Bool or DataType.UInt8 or DataType.Int8 => 1,
        DataType.UInt16 or DataType.Int16 or DataType.Fp16 or DataType.Bf16 => 2,
        DataType.UInt32 or DataType.Int32 or DataType.Fp32 => 4,
        DataType.UInt64 or DataType.Int64 or DataType.Fp64 => 8,
        _ => 0,
    };

    /// <summary>Parses a protocol name ("FP32") or a configuration name ("TYPE_FP32", "TYPE_STRING"), case-insensitively.</summary>
    public static bool TryParse(ReadOnlySpan<char> text, out DataType type)
    {
        if (text.StartsWith("TYPE_", StringComparison.OrdinalIgnoreCase))
        {
            text = text[5..];
            if (text.Equals("STRING", StringComparison.OrdinalIgnoreCase))
            {
                type = DataType.Bytes;
                return true;
            }
        }
        for (var i = 1; i < Names.Length; i++)
        {
            if (text.Equals(Names[i], StringComparison.OrdinalIgnoreCase))
            {
                type = (DataType)i;
                return true;
            }
        }
        type = DataType.Invalid;
        return false;
    }
}
