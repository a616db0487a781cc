using System.Globalization;
using System.Text.Json;
using InferenceServer.Inference;
using InferenceServer.Tensors;

namespace InferenceServer.Http;

/// <summary>Which outputs a REST client wants as binary data (Triton's binary tensor data extension).</summary>
internal sealed class RestOutputEncoding
{
    public bool BinaryByDefault { get; set; }

    public Dictionary<string, bool> PerOutput { get; } = new(StringComparer.Ordinal);

    /// <summary>BF16 has no JSON form, so it always travels as binary data.</summary>
    public bool IsBinary(Tensor output) =>
        output.DataType == DataType.Bf16 || (PerOutput.TryGetValue(output.Name, out var binary) ? binary : BinaryByDefault);
}

/// <summary>
/// The Open Inference Protocol's REST infer body: a JSON header, optionally followed by binary tensor data whose
/// JSON length is given by the <c>Inference-Header-Content-Length</c> header. JSON or binary is decided by that
/// header alone, never by Content-Type (Triton's client sends none; curl -d sends a form type).
/// </summary>
internal static class RestInferCodec
{
    public const string HeaderLengthHeader = "Inference-Header-Content-Length";

    private static readonly RequestLimits DefaultLimits = new();

    /// <summary>
    /// Decodes an infer body; binary inputs are views of <paramref name="body"/>, which must outlive the request.
    /// Each input's shape is checked against <paramref name="limits"/> before its data is decoded.
    /// </summary>
    public static InferenceRequest ReadRequest(string model, string version, ReadOnlyMemory<byte> body, string? headerLength, RestOutputEncoding encoding, RequestLimits? limits = null)
    {
        limits ??= DefaultLimits;
        var json = body;
        var binary = ReadOnlyMemory<byte>.Empty;
        if (headerLength is not null)
        {
            if (!int.TryParse(headerLength, NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length > body.Length)
            {
                throw InferenceException.InvalidArgument(
                    $"{HeaderLengthHeader} '{headerLength}' is not a length within the {body.Length}-byte body");
            }
            json = body[..length];
            binary = body[length..];
        }
        if (json.IsEmpty)
        {
            throw InferenceException.InvalidArgument("the request body is empty; expected a JSON object with \"inputs\"");
        }

        using var document = ParseJson(json, limits.MaxJsonDepth);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw InferenceException.InvalidArgument("the request body must be a JSON object");
        }
        var request = new InferenceRequest(model, version);
        try
        {
            if (root.TryGetProperty("id", out var id))
            {
                request.Id = id.ValueKind == JsonValueKind.String ? id.GetString()! : throw InferenceException.InvalidArgument("\"id\" must be a string");
            }
            if (root.TryGetProperty("parameters", out var parameters))
            {
                ReadParameters(parameters, request.Parameters, "request");
                request.ReadSchedulingParameters();
                if (request.Parameters.TryGetValue("binary_data_output", out var all))
                {
                    encoding.BinaryByDefault = all is true;
                }
            }
            if (!root.TryGetProperty("inputs", out var inputs) || inputs.ValueKind != JsonValueKind.Array)
            {
                throw InferenceException.InvalidArgument("the request needs an \"inputs\" array");
            }
            var offset = 0;
            long requestBytes = 0;
            foreach (var input in inputs.EnumerateArray())
            {
                request.AddInput(ReadInput(input, binary, ref offset, limits, ref requestBytes));
            }
            if (offset != binary.Length)
            {
                throw InferenceException.InvalidArgument(
                    $"the body has {binary.Length - offset} bytes of binary data that no input's binary_data_size claims");
            }
            if (root.TryGetProperty("outputs", out var outputs))
            {
                ReadOutputs(outputs, request, encoding);
            }
            return request;
        }
        catch
        {
            request.Dispose();
            throw;
        }
    }

    /// <summary>Parses the JSON header; nesting deeper than the limit is a client error that says so.</summary>
    public static JsonDocument ParseJson(ReadOnlyMemory<byte> json, int maxDepth)
    {
        // The reader checks structure, not the UTF-8 inside strings; a bad byte would fail later, deep in a GetString.
        if (!System.Text.Unicode.Utf8.IsValid(json.Span))
        {
            throw InferenceException.InvalidArgument("the JSON body is not valid UTF-8");
        }
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = maxDepth });
        }
        catch (JsonException e) when (e.Message.Contains("maximum configured depth", StringComparison.Ordinal))
        {
            throw InferenceException.InvalidArgument($"the JSON body nests deeper than {maxDepth} levels (Limits:MaxJsonDepth)");
        }
    }

    private static Tensor ReadInput(JsonElement input, ReadOnlyMemory<byte> binary, ref int offset, RequestLimits limits, ref long requestBytes)
    {
        if (input.ValueKind != JsonValueKind.Object)
        {
            throw InferenceException.InvalidArgument("each input must be a JSON object");
        }
        var name = input.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
            ? n.GetString()!
            : throw InferenceException.InvalidArgument("an input has no \"name\"");
        var datatype = input.TryGetProperty("datatype", out var dt) && dt.ValueKind == JsonValueKind.String ? dt.GetString()! : "";
        if (!DataTypes.TryParse(datatype, out var type) || datatype.StartsWith("TYPE_", StringComparison.Ordinal))
        {
            throw InferenceException.InvalidArgument($"input '{name}' has a missing or unknown \"datatype\"");
        }
        var shape = ReadShape(name, input);
        limits.CheckInput(name, type, shape, ref requestBytes);
        TensorShape.TryGetElementCount(shape, out var count);

        long? binarySize = null;
        if (input.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object &&
            parameters.TryGetProperty("binary_data_size", out var size))
        {
            binarySize = size.ValueKind == JsonValueKind.Number && size.TryGetInt64(out var s) && s >= 0
                ? s
                : throw InferenceException.InvalidArgument($"input '{name}': binary_data_size must be a non-negative integer");
        }
        if (binarySize is long bytes)
        {
            if (input.TryGetProperty("data", out _))
            {
                throw InferenceException.InvalidArgument($"input '{name}' has both \"data\" and binary_data_size");
            }
            if (bytes > binary.Length - offset)
            {
                throw InferenceException.InvalidArgument(
                    $"input '{name}': binary_data_size {bytes} exceeds the {binary.Length - offset} bytes of binary data left in the body");
            }
            // Binary data is read in place: the body outlives the request (see ReadRequest).
            var tensor = new Tensor(name, type, shape, TensorBuffer.Wrap(binary.Slice(offset, (int)bytes)));
            offset += (int)bytes;
            return tensor;
        }
        if (!input.TryGetProperty("data", out var data))
        {
            throw InferenceException.InvalidArgument($"input '{name}' has neither \"data\" nor binary_data_size");
        }
        var actual = JsonTensorData.CountElements(data);
        if (actual != count)
        {
            throw InferenceException.InvalidArgument(
                $"input '{name}' has {actual} elements in \"data\" but shape {TensorShape.Format(shape)} needs {count}");
        }
        return new Tensor(name, type, shape, JsonTensorData.Decode(name, type, data, count));
    }

    private static long[] ReadShape(string name, JsonElement input)
    {
        if (!input.TryGetProperty("shape", out var shape) || shape.ValueKind != JsonValueKind.Array)
        {
            throw InferenceException.InvalidArgument($"input '{name}' needs a \"shape\" array");
        }
        var dims = new long[shape.GetArrayLength()];
        var i = 0;
        foreach (var d in shape.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var v) || v < 0)
            {
                throw InferenceException.InvalidArgument($"input '{name}': shape must hold non-negative integers");
            }
            dims[i++] = v;
        }
        return dims;
    }

    private static void ReadOutputs(JsonElement outputs, InferenceRequest request, RestOutputEncoding encoding)
    {
        if (outputs.ValueKind != JsonValueKind.Array)
        {
            throw InferenceException.InvalidArgument("\"outputs\" must be an array");
        }
        foreach (var output in outputs.EnumerateArray())
        {
            var name = output.ValueKind == JsonValueKind.Object && output.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String
                ? n.GetString()!
                : throw InferenceException.InvalidArgument("each requested output needs a \"name\"");
            if (request.RequestedOutputs.Contains(name))
            {
                throw InferenceException.InvalidArgument($"output '{name}' is requested more than once");
            }
            request.RequestedOutputs.Add(name);
            if (output.TryGetProperty("parameters", out var parameters) && parameters.ValueKind == JsonValueKind.Object)
            {
                if (parameters.TryGetProperty("classification", out _))
                {
                    throw InferenceException.InvalidArgument($"output '{name}': the classification extension is not supported");
                }
                if (parameters.TryGetProperty("binary_data", out var binary))
                {
                    encoding.PerOutput[name] = binary.ValueKind switch
                    {
                        JsonValueKind.True => true,
                        JsonValueKind.False => false,
                        _ => throw InferenceException.InvalidArgument($"output '{name}': binary_data must be true or false"),
                    };
                }
            }
        }
    }

    public static void ReadParameters(JsonElement parameters, Dictionary<string, object> target, string owner)
    {
        if (parameters.ValueKind != JsonValueKind.Object)
        {
            throw InferenceException.InvalidArgument($"{owner} \"parameters\" must be a JSON object");
        }
        foreach (var p in parameters.EnumerateObject())
        {
            target[p.Name] = p.Value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                JsonValueKind.String => p.Value.GetString()!,
                JsonValueKind.Number when p.Value.TryGetInt64(out var l) => l,
                JsonValueKind.Number => p.Value.GetDouble(),
                _ => throw InferenceException.InvalidArgument($"{owner} parameter '{p.Name}' must be a string, number or boolean"),
            };
        }
    }

    public static async Task WriteResponseAsync(HttpResponse http, InferenceResponse response, RestOutputEncoding encoding, CancellationToken cancellationToken)
    {
        using var buffer = new PooledBufferWriter();
        long binaryBytes = 0;
        using (var writer = new Utf8JsonWriter(buffer, JsonWriting.Options))
        {
            writer.WriteStartObject();
            writer.WriteString("model_name", response.ModelName);
            writer.WriteString("model_version", response.ModelVersion);
            if (response.Id.Length > 0)
            {
                writer.WriteString("id", response.Id);
            }
            if (response.FallbackFor is { } requested)
            {
                // The requested model's circuit breaker was open: say who served the request instead.
                writer.WriteStartObject("parameters");
                writer.WriteString(Protocol.RequestMetadata.ServedByModelParameter, response.ServedBy);
                writer.WriteString(Protocol.RequestMetadata.FallbackForParameter, requested);
                writer.WriteEndObject();
                http.Headers[Protocol.RequestMetadata.ServedByModelHeader] = response.ServedBy;
            }
            writer.WriteStartArray("outputs");
            foreach (var output in response.Outputs)
            {
                writer.WriteStartObject();
                writer.WriteString("name", output.Name);
                writer.WriteString("datatype", output.DataType.Name());
                writer.WriteStartArray("shape");
                foreach (var d in output.Shape)
                {
                    writer.WriteNumberValue(d);
                }
                writer.WriteEndArray();
                if (encoding.IsBinary(output))
                {
                    writer.WriteStartObject("parameters");
                    writer.WriteNumber("binary_data_size", output.Data.Length);
                    writer.WriteEndObject();
                    binaryBytes += output.Data.Length;
                }
                else
                {
                    writer.WritePropertyName("data");
                    JsonTensorData.Encode(writer, output);
                }
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        http.StatusCode = 200;
        http.ContentLength = buffer.WrittenCount + binaryBytes;
        if (binaryBytes > 0 || response.Outputs.Exists(encoding.IsBinary))
        {
            http.ContentType = "application/octet-stream";
            http.Headers[HeaderLengthHeader] = buffer.WrittenCount.ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            http.ContentType = "application/json";
        }
        await http.Body.WriteAsync(buffer.WrittenMemory, cancellationToken);
        foreach (var output in response.Outputs)
        {
            if (encoding.IsBinary(output))
            {
                await http.Body.WriteAsync(output.Data.Memory, cancellationToken);
            }
        }
    }
}
