namespace InferenceServer.Tensors;

/// <summary>Arithmetic on tensor shapes (arrays of dimension sizes; -1 is a variable dimension in a configuration).</summary>
public static class TensorShape
{
    /// <summary>The number of elements of a concrete shape; false when a dimension is negative or the count overflows.</summary>
    public static bool TryGetElementCount(ReadOnlySpan<long> shape, out long count)
    {
        count = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                return false;
            }
            try
            {
                count = checked(count * d);
            }
            catch (OverflowException)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>Formats a shape as "[1,3,224,224]" for error messages.</summary>
    public static string Format(ReadOnlySpan<long> shape) => "[" + string.Join(",", shape.ToArray()) + "]";
}
