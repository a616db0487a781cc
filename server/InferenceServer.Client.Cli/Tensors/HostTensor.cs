namespace InferenceServer.Client.Cli.Tensors;

/// <summary>
/// A tensor on the command line's side: a protocol datatype, a shape and the values, either as little-endian bytes
/// (every fixed-size datatype) or as one byte string per element (BYTES).
/// </summary>
internal sealed class HostTensor
{
    public required string Name { get; init; }

    /// <summary>The protocol datatype name (INT32, FP32, BYTES, ...).</summary>
    public required string Datatype { get; init; }

    public required long[] Shape { get; init; }

    /// <summary>The values of a fixed-size datatype, little-endian, C order.</summary>
    public byte[] Data { get; init; } = [];

    /// <summary>The elements of a BYTES tensor.</summary>
    public IReadOnlyList<byte[]> Elements { get; init; } = [];

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public HostTensor Rename(string name) => new() { Name = name, Datatype = Datatype, Shape = Shape, Data = Data, Elements = Elements };

    /// <summary>Checks that the values fit the shape.</summary>
    public void Validate(string source)
    {
        var count = ElementCount;
        if (Datatype == "BYTES")
        {
            if (Elements.Count != count)
            {
                throw new CliInputException($"{source}: shape [{string.Join(", ", Shape)}] has {count} elements but {Elements.Count} values were given");
            }
            return;
        }
        var size = Datatypes.ElementSize(Datatype);
        if (Data.Length != count * size)
        {
            throw new CliInputException($"{source}: shape [{string.Join(", ", Shape)}] has {count} elements but {Data.Length / size} values were given");
        }
    }
}
