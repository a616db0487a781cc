namespace InferenceServer.Client;

/// <summary>The protocol's datatype names (KServe v2 / Triton), and the .NET element type of each.</summary>
public static class DataType
{
    /// <summary>Booleans, one byte each (<see cref="bool"/>).</summary>
    public const string Bool = "BOOL";
    /// <summary><see cref="byte"/>.</summary>
    public const string UInt8 = "UINT8";
    /// <summary><see cref="ushort"/>.</summary>
    public const string UInt16 = "UINT16";
    /// <summary><see cref="uint"/>.</summary>
    public const string UInt32 = "UINT32";
    /// <summary><see cref="ulong"/>.</summary>
    public const string UInt64 = "UINT64";
    /// <summary><see cref="sbyte"/>.</summary>
    public const string Int8 = "INT8";
    /// <summary><see cref="short"/>.</summary>
    public const string Int16 = "INT16";
    /// <summary><see cref="int"/>.</summary>
    public const string Int32 = "INT32";
    /// <summary><see cref="long"/>.</summary>
    public const string Int64 = "INT64";
    /// <summary>IEEE half precision (<see cref="Half"/>).</summary>
    public const string Fp16 = "FP16";
    /// <summary>bfloat16 (<see cref="BFloat16"/>, a struct over the 16 raw bits).</summary>
    public const string Bf16 = "BF16";
    /// <summary><see cref="float"/>.</summary>
    public const string Fp32 = "FP32";
    /// <summary><see cref="double"/>.</summary>
    public const string Fp64 = "FP64";
    /// <summary>Byte strings of any length (UTF-8 text or raw bytes).</summary>
    public const string Bytes = "BYTES";

    /// <summary>The datatype whose elements are <typeparamref name="T"/>.</summary>
    /// <exception cref="ArgumentException"><typeparamref name="T"/> is not an element type of the protocol.</exception>
    public static string Of<T>() where T : unmanaged => Of(typeof(T));

    /// <summary>The datatype whose elements are <paramref name="elementType"/>.</summary>
    /// <exception cref="ArgumentException">The type is not an element type of the protocol.</exception>
    public static string Of(Type elementType) => elementType switch
    {
        _ when elementType == typeof(bool) => Bool,
        _ when elementType == typeof(byte) => UInt8,
        _ when elementType == typeof(ushort) => UInt16,
        _ when elementType == typeof(uint) => UInt32,
        _ when elementType == typeof(ulong) => UInt64,
        _ when elementType == typeof(sbyte) => Int8,
        _ when elementType == typeof(short) => Int16,
        _ when elementType == typeof(int) => Int32,
        _ when elementType == typeof(long) => Int64,
        _ when elementType == typeof(Half) => Fp16,
        _ when elementType == typeof(BFloat16) => Bf16,
        _ when elementType == typeof(float) => Fp32,
        _ when elementType == typeof(double) => Fp64,
        _ => throw new ArgumentException(
            $"{elementType.Name} is not a tensor element type; use bool, byte, ushort, uint, ulong, sbyte, short, int, long, Half, BFloat16, float or double (or strings / byte arrays for BYTES)",
            nameof(elementType)),
    };

    /// <summary>Every datatype name of the protocol, in the order of the constants above.</summary>
    public static IReadOnlyList<string> All { get; } =
        [Bool, UInt8, UInt16, UInt32, UInt64, Int8, Int16, Int32, Int64, Fp16, Bf16, Fp32, Fp64, Bytes];

    /// <summary>Whether <paramref name="datatype"/> is one of <see cref="All"/> (names are case-sensitive).</summary>
    public static bool IsKnown(string datatype) => All.Contains(datatype, StringComparer.Ordinal);

    /// <summary>The size in bytes of one element, or 0 for <see cref="Bytes"/>.</summary>
    /// <exception cref="ArgumentException">An unknown datatype.</exception>
    public static int ElementSize(string datatype) => datatype switch
    {
        Bool or UInt8 or Int8 => 1,
        UInt16 or Int16 or Fp16 or Bf16 => 2,
        UInt32 or Int32 or Fp32 => 4,
        UInt64 or Int64 or Fp64 => 8,
        Bytes => 0,
        _ => throw new ArgumentException($"unknown datatype '{datatype}'", nameof(datatype)),
    };
}
