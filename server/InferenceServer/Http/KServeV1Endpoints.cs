using System.Text.Json;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tensors;

namespace InferenceServer.Http;

/// <summary>
/// KServe's v1 predict API for simple JSON clients: <c>{"instances": [...]}</c> in, <c>{"predictions": [...]}</c> out.
/// Each instance is one row of the batch: a (nested) value for a single-input model, or an object keyed by input
/// name. Each prediction is the matching row of the output, or an object keyed by output name when there are several.
/// </summary>
internal static class KServeV1Endpoints
{
    public static IEndpointRouteBuilder MapKServeV1(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/models/{name}:predict", PredictAsync);
        return app;
    }

    private static async Task PredictAsync(HttpContext context)
    {
        var name = (string)context.GetRouteValue("name")!;
        var repository = context.RequestServices.GetRequiredService<ModelRepository>();
        var dispatcher = context.RequestServices.GetRequiredService<IInferenceDispatcher>();
        var config = repository.GetReady(name, "").Config!;

        using var body = await RequestBody.ReadAsync(context.Request, context.RequestAborted);
        using var document = RestInferCodec.ParseJson(body.Memory, dispatcher.Limits.MaxJsonDepth);
        if (document.RootElement.ValueKind != JsonValueKind.Object ||
            !document.RootElement.TryGetProperty("instances", out var instances) || instances.ValueKind != JsonValueKind.Array)
        {
            throw InferenceException.InvalidArgument("the request must be a JSON object with an \"instances\" array");
        }
        if (instances.GetArrayLength() == 0)
        {
            throw InferenceException.InvalidArgument("\"instances\" is empty");
        }

        using var request = new InferenceRequest(name);
        request.Tenant = Protocol.RequestMetadata.TenantOf(context);
        var keyed = instances[0].ValueKind == JsonValueKind.Object;
        if (!keyed && config.Inputs.Count != 1)
        {
            throw InferenceException.InvalidArgument(
                $"model '{name}' has {config.Inputs.Count} inputs; each instance must be an object keyed by input name ({string.Join(", ", config.Inputs.Select(i => i.Name))})");
        }
        long requestBytes = 0;
        foreach (var input in config.Inputs)
        {
            if (keyed && !instances[0].TryGetProperty(input.Name, out _))
            {
                continue;
            }
            request.AddInput(BuildInput(input, instances, keyed, dispatcher.Limits, ref requestBytes));
        }

        using var response = await dispatcher.InferAsync(request, context.RequestAborted);
        if (response.FallbackFor is not null)
        {
            context.Response.Headers[Protocol.RequestMetadata.ServedByModelHeader] = response.ServedBy;
        }
        using var buffer = new PooledBufferWriter();
        using (var writer = new Utf8JsonWriter(buffer, JsonWriting.Options))
        {
            WritePredictions(writer, response);
        }
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }

    private static Tensor BuildInput(TensorConfig input, JsonElement instances, bool keyed, RequestLimits limits, ref long requestBytes)
    {
        var rows = instances.GetArrayLength();
        var first = Value(instances[0], input.Name, keyed);
        var rowShape = new List<long>();
        for (var e = first; e.ValueKind == JsonValueKind.Array; e = e.GetArrayLength() > 0 ? e[0] : default)
        {
            rowShape.Add(e.GetArrayLength());
            if (e.GetArrayLength() == 0)
            {
                break;
            }
        }
        long[] shape = [rows, .. rowShape];
        // The limits, as the other decoders check them: on the shape, before the tensor's buffer is sized from it.
        limits.CheckInput(input.Name, input.DataType, shape, ref requestBytes);
        TensorShape.TryGetElementCount(rowShape.ToArray(), out var perRow);
        using var writer = new TensorWriter(input.DataType, perRow * rows);
        var i = 0;
        foreach (var instance in instances.EnumerateArray())
        {
            var value = Value(instance, input.Name, keyed);
            if (JsonTensorData.CountElements(value) != perRow)
            {
                throw InferenceException.InvalidArgument(
                    $"instance {i} of input '{input.Name}' does not have the shape of instance 0 {TensorShape.Format(rowShape.ToArray())}");
            }
            JsonTensorData.DecodeInto(input.Name, writer, value);
            i++;
        }
        return new Tensor(input.Name, input.DataType, shape, writer.Detach());
    }

    private static JsonElement Value(JsonElement instance, string input, bool keyed)
    {
        if (!keyed)
        {
            return instance;
        }
        if (instance.ValueKind != JsonValueKind.Object || !instance.TryGetProperty(input, out var value))
        {
            throw InferenceException.InvalidArgument($"every instance must be an object with input '{input}'");
        }
        return value;
    }

    private static void WritePredictions(Utf8JsonWriter writer, InferenceResponse response)
    {
        writer.WriteStartObject();
        writer.WriteStartArray("predictions");
        var rows = response.Outputs.Count > 0 && response.Outputs[0].Shape.Length > 0 ? response.Outputs[0].Shape[0] : 1;
        var cursors = new JsonTensorData.ElementCursor[response.Outputs.Count];
        for (var o = 0; o < cursors.Length; o++)
        {
            cursors[o] = new JsonTensorData.ElementCursor(response.Outputs[o]);
        }
        for (var r = 0; r < rows; r++)
        {
            if (response.Outputs.Count == 1)
            {
                JsonTensorData.EncodeNested(writer, ref cursors[0], RowShape(response.Outputs[0]));
                continue;
            }
            writer.WriteStartObject();
            for (var o = 0; o < cursors.Length; o++)
            {
                writer.WritePropertyName(response.Outputs[o].Name);
                JsonTensorData.EncodeNested(writer, ref cursors[o], RowShape(response.Outputs[o]));
            }
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static ReadOnlySpan<long> RowShape(Tensor tensor) => tensor.Shape.Length > 0 ? tensor.Shape.AsSpan(1) : [];
}
