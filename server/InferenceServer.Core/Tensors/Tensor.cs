using System.Runtime.InteropServices;

namespace InferenceServer.Tensors;

/// <summary>A named tensor whose bytes live in a pooled <see cref="TensorBuffer"/>; disposing returns them.</summary>
public sealed class Tensor : IDisposable
{
    /// <summary>Creates a tensor over <paramref name="data"/>, taking ownership of it.</summary>
    public Tensor(string name, DataType dataType, long[] shape, TensorBuffer data)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(data);
        Name = name;
        DataType = dataType;
        Shape = shape;
        Data = data;
    }

    /// <summary>The tensor's name (the model's input or output name).</summary>
    public string Name { get; }

    /// <summary>The element type.</summary>
    public DataType DataType { get; }

    /// <summary>The dimensions.</summary>
    public long[] Shape { get; }

    /// <summary>The element bytes (see <see cref="TensorBuffer"/> for the layout).</summary>
    public TensorBuffer Data { get; }

    /// <summary>The elements viewed as <typeparamref name="T"/> (fixed-size types only).</summary>
    public ReadOnlySpan<T> Elements<T>() where T : unmanaged => MemoryMarshal.Cast<byte, T>(Data.Span);

    /// <inheritdoc />
    public void Dispose() => Data.Dispose();
}
