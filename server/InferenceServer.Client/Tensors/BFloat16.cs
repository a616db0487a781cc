namespace InferenceServer.Client;

/// <summary>
/// A bfloat16 value (the upper 16 bits of an IEEE single), for <see cref="DataType.Bf16"/> tensors. .NET has no built-in
/// bfloat16; this struct holds the raw bits, converts to and from <see cref="float"/> (rounding to nearest even), and has
/// the same layout as the protocol's little-endian elements.
/// </summary>
public readonly record struct BFloat16(ushort Bits)
{
    /// <summary>The nearest bfloat16 to <paramref name="value"/> (NaN stays NaN).</summary>
    public static BFloat16 FromSingle(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return new BFloat16((ushort)((bits >> 16) | 0x0040));
        }
        var roundingBias = 0x7FFFu + ((bits >> 16) & 1);
        return new BFloat16((ushort)((bits + roundingBias) >> 16));
    }

    /// <summary>The exact single-precision value of this bfloat16.</summary>
    public float ToSingle() => BitConverter.UInt32BitsToSingle((uint)Bits << 16);

    /// <summary>Converts from <see cref="float"/>, rounding to nearest even.</summary>
    public static explicit operator BFloat16(float value) => FromSingle(value);

    /// <summary>Converts to <see cref="float"/> exactly.</summary>
    public static implicit operator float(BFloat16 value) => value.ToSingle();

    /// <inheritdoc />
    public override string ToString() => ToSingle().ToString(System.Globalization.CultureInfo.InvariantCulture);
}
