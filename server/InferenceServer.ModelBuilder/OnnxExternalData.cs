using System.Globalization;
using Google.Protobuf;
using InferenceServer.ModelBuilder.Onnx;

namespace InferenceServer.ModelBuilder;

/// <summary>
/// ONNX external data: the element bytes of large initializers live in a file beside the model, and each such
/// <c>TensorProto</c> keeps only <c>data_location: EXTERNAL</c> and the <c>external_data</c> entries <c>location</c>
/// (the file, relative to the model's directory), <c>offset</c> and <c>length</c> (decimal byte counts). This is how
/// models over protobuf's 2 GB limit are stored (Optimum's <c>model.onnx</c> + <c>model.onnx_data</c>).
/// </summary>
public static class OnnxExternalData
{
    /// <summary>Initializers smaller than this many bytes stay inside the model (the ONNX tools' default threshold).</summary>
    public const int DefaultSizeThreshold = 1024;

    /// <summary>Every externalized tensor starts at a multiple of this many bytes of the data file.</summary>
    public const int Alignment = 64;

    /// <summary>
    /// Moves the raw data of every initializer of at least <paramref name="sizeThreshold"/> bytes out of
    /// <paramref name="model"/> (changed in place) and returns the data file's contents: the tensors in graph order,
    /// each at an offset aligned to <see cref="Alignment"/>, zero bytes between them.
    /// </summary>
    /// <param name="model">The model; its initializers must hold their bytes in <c>raw_data</c> (as <see cref="OnnxGraphBuilder"/> writes them).</param>
    /// <param name="location">The data file's path relative to the model's directory, e.g. <c>model.onnx_data</c>.</param>
    /// <param name="sizeThreshold">Initializers with fewer raw bytes stay inside the model.</param>
    /// <exception cref="ArgumentException">The location is empty, absolute or leaves the model's directory.</exception>
    public static byte[] Externalize(ModelProto model, string location, int sizeThreshold = DefaultSizeThreshold)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(location);
        ArgumentOutOfRangeException.ThrowIfNegative(sizeThreshold);
        if (Path.IsPathRooted(location) || location.Split('/', '\\').Contains(".."))
        {
            throw new ArgumentException($"External data location '{location}' must be a relative path inside the model's directory.", nameof(location));
        }

        using var data = new MemoryStream();
        foreach (var tensor in model.Graph?.Initializer ?? [])
        {
            if (tensor.DataLocation == TensorProto.Types.DataLocation.External || tensor.RawData.Length < sizeThreshold || tensor.RawData.Length == 0)
            {
                continue;
            }

            long offset = (data.Length + Alignment - 1) / Alignment * Alignment;
            data.SetLength(offset);
            data.Position = offset;
            tensor.RawData.WriteTo(data);
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(CultureInfo.InvariantCulture) });
            tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = tensor.RawData.Length.ToString(CultureInfo.InvariantCulture) });
            tensor.DataLocation = TensorProto.Types.DataLocation.External;
            tensor.RawData = ByteString.Empty;
        }

        return data.ToArray();
    }

    /// <summary>
    /// Reads back the bytes of an externalized <paramref name="tensor"/> from the directory <paramref name="modelDirectory"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The tensor is not external, or its entries are missing or out of range.</exception>
    public static byte[] ReadTensorBytes(TensorProto tensor, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentException.ThrowIfNullOrEmpty(modelDirectory);
        if (tensor.DataLocation != TensorProto.Types.DataLocation.External)
        {
            throw new InvalidDataException($"Tensor '{tensor.Name}' keeps its data inside the model.");
        }

        string Entry(string key) =>
            tensor.ExternalData.FirstOrDefault(e => e.Key == key)?.Value
            ?? throw new InvalidDataException($"Tensor '{tensor.Name}' has no external_data entry '{key}'.");

        string location = Entry("location");
        long offset = long.Parse(tensor.ExternalData.Any(e => e.Key == "offset") ? Entry("offset") : "0", NumberStyles.None, CultureInfo.InvariantCulture);
        using var file = File.OpenRead(Path.Combine(modelDirectory, location));
        long length = tensor.ExternalData.Any(e => e.Key == "length")
            ? long.Parse(Entry("length"), NumberStyles.None, CultureInfo.InvariantCulture)
            : file.Length - offset;
        if (offset < 0 || length < 0 || offset + length > file.Length || length > Array.MaxLength)
        {
            throw new InvalidDataException($"Tensor '{tensor.Name}': bytes [{offset}, {offset + length}) are outside '{location}' ({file.Length} bytes).");
        }

        var bytes = new byte[length];
        file.Position = offset;
        file.ReadExactly(bytes);
        return bytes;
    }
}
