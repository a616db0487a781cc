namespace InferenceServer.ModelBuilder;

/// <summary>
/// Element type of an ONNX tensor. The numeric values are those of ONNX's
/// <c>TensorProto.DataType</c>, so a value can be stored directly in
/// <c>TensorProto.data_type</c> and <c>TypeProto.Tensor.elem_type</c>.
/// </summary>
public enum TensorElementKind
{
    /// <summary>Not set; invalid for a tensor.</summary>
    Undefined = 0,
    /// <summary>32-bit IEEE float (ONNX FLOAT).</summary>
    Float = 1,
    /// <summary>Unsigned 8-bit integer (ONNX UINT8).</summary>
    UInt8 = 2,
    /// <summary>Signed 8-bit integer (ONNX INT8).</summary>
    Int8 = 3,
    /// <summary>Unsigned 16-bit integer (ONNX UINT16).</summary>
    UInt16 = 4,
    /// <summary>Signed 16-bit integer (ONNX INT16).</summary>
    Int16 = 5,
    /// <summary>Signed 32-bit integer (ONNX INT32).</summary>
    Int32 = 6,
    /// <summary>Signed 64-bit integer (ONNX INT64).</summary>
    Int64 = 7,
    /// <summary>Byte string (ONNX STRING); elements live in <see cref="OnnxTensor.Strings"/>.</summary>
    String = 8,
    /// <summary>Boolean stored as one byte, 0 or 1 (ONNX BOOL).</summary>
    Bool = 9,
    /// <summary>16-bit IEEE half float (ONNX FLOAT16).</summary>
    Float16 = 10,
    /// <summary>64-bit IEEE float (ONNX DOUBLE).</summary>
    Double = 11,
    /// <summary>Unsigned 32-bit integer (ONNX UINT32).</summary>
    UInt32 = 12,
    /// <summary>Unsigned 64-bit integer (ONNX UINT64).</summary>
    UInt64 = 13,
    /// <summary>Pair of 32-bit floats, real then imaginary (ONNX COMPLEX64).</summary>
    Complex64 = 14,
    /// <summary>Pair of 64-bit floats, real then imaginary (ONNX COMPLEX128).</summary>
    Complex128 = 15,
    /// <summary>Brain float 16: the upper half of a 32-bit float (ONNX BFLOAT16).</summary>
    BFloat16 = 16,
}

/// <summary>Helpers for <see cref="TensorElementKind"/>.</summary>
public static class TensorElementKindExtensions
{
    /// <summary>
    /// Size in bytes of one element, or 0 for <see cref="TensorElementKind.String"/>
    /// (variable length).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">The kind is undefined or unknown.</exception>
    public static int ElementSize(this TensorElementKind kind) => kind switch
    {
        TensorElementKind.Float => 4,
        TensorElementKind.UInt8 => 1,
        TensorElementKind.Int8 => 1,
        TensorElementKind.UInt16 => 2,
        TensorElementKind.Int16 => 2,
        TensorElementKind.Int32 => 4,
        TensorElementKind.Int64 => 8,
        TensorElementKind.String => 0,
        TensorElementKind.Bool => 1,
        TensorElementKind.Float16 => 2,
        TensorElementKind.Double => 8,
        TensorElementKind.UInt32 => 4,
        TensorElementKind.UInt64 => 8,
        TensorElementKind.Complex64 => 8,
        TensorElementKind.Complex128 => 16,
        TensorElementKind.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Not a tensor element type."),
    };

    /// <summary>The upper-case name ONNX uses for the kind, e.g. <c>FLOAT16</c>.</summary>
    public static string OnnxName(this TensorElementKind kind) =>
        Enum.IsDefined(kind) ? kind.ToString().ToUpperInvariant() : ((int)kind).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
