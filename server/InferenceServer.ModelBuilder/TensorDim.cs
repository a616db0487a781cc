namespace InferenceServer.ModelBuilder;

/// <summary>
/// One dimension of a graph input or output shape: fixed (<c>dim_value</c>),
/// symbolic (<c>dim_param</c>, e.g. <c>"batch"</c>) or unknown (neither).
/// Converts implicitly from <see cref="long"/>/<see cref="int"/> (a negative value
/// means unknown) and from <see cref="string"/> (symbolic), so shapes can be
/// written as <c>.Input("x", TensorElementKind.Float, "batch", 4)</c>.
/// </summary>
public readonly record struct TensorDim
{
    private TensorDim(long? value, string? symbol)
    {
        Value = value;
        Symbol = symbol;
    }

    /// <summary>The fixed size, or null when symbolic or unknown.</summary>
    public long? Value { get; }

    /// <summary>The symbolic name, or null when fixed or unknown.</summary>
    public string? Symbol { get; }

    /// <summary>True for a dimension that is neither fixed nor symbolic.</summary>
    public bool IsUnknown => Value is null && Symbol is null;

    /// <summary>A dimension of unknown size with no name.</summary>
    public static TensorDim Unknown => default;

    /// <summary>A fixed dimension; a negative size means unknown.</summary>
    public static TensorDim Fixed(long size) => size < 0 ? Unknown : new TensorDim(size, null);

    /// <summary>A symbolic dimension such as <c>"batch"</c>.</summary>
    /// <exception cref="ArgumentException">The name is null or empty.</exception>
    public static TensorDim Symbolic(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return new TensorDim(null, name);
    }

    /// <summary>Same as <see cref="Fixed(long)"/>.</summary>
    public static implicit operator TensorDim(long size) => Fixed(size);

    /// <summary>Same as <see cref="Fixed(long)"/>.</summary>
    public static implicit operator TensorDim(int size) => Fixed(size);

    /// <summary>Same as <see cref="Symbolic(string)"/>.</summary>
    public static implicit operator TensorDim(string name) => Symbolic(name);

    /// <inheritdoc />
    public override string ToString() => Symbol ?? Value?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?";
}
