using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Protocol;

namespace InferenceServer.Http;

/// <summary>
/// Triton's generate extension: <c>POST /v2/models/{model}/generate</c> answers with the whole text,
/// <c>/generate_stream</c> with server-sent events, one per piece of text. The body is
/// <c>{"text_input": "...", "parameters": {...}}</c>; as in Triton, the parameters may also be given at the top level.
/// Errors before the stream starts use the REST error contract (<see cref="RestErrorMiddleware"/>); later ones are sent
/// in-band as <c>data: {"error": "..."}</c>.
/// </summary>
internal static class GenerateEndpoints
{
    public static IEndpointRouteBuilder MapTritonGenerate(this IEndpointRouteBuilder app)
    {
        foreach (var model in (string[])["/v2/models/{name}", "/v2/models/{name}/versions/{version}"])
        {
            app.MapPost(model + "/generate", context => GenerateAsync(context, streaming: false));
            app.MapPost(model + "/generate_stream", context => GenerateAsync(context, streaming: true));
        }
        return app;
    }

    private static async Task GenerateAsync(HttpContext context, bool streaming)
    {
        var name = (string)context.GetRouteValue("name")!;
        var version = context.GetRouteValue("version") as string;
        var cancellationToken = context.RequestAborted;
        var received = System.Diagnostics.Stopwatch.GetTimestamp();
        (GenerationRequest Request, bool? Stream) parsed;
        using (var body = await RequestBody.ReadAsync(context.Request, cancellationToken))
        {
            parsed = ReadRequest(body.Memory, context.RequestServices.GetRequiredService<RequestLimits>().MaxJsonDepth, received);
        }
        parsed.Request.Tenant = Protocol.RequestMetadata.TenantOf(context);
        var generator = context.RequestServices.GetRequiredService<ITextGenerator>();
        var stream = await generator.GenerateAsync(name, string.IsNullOrEmpty(version) ? null : version, parsed.Request, cancellationToken);
        Observability.AccessLogEntry.SetModel(context, stream.ModelName, stream.ModelVersion);
        if (stream.FallbackFor is not null)
        {
            // The breaker of the model asked for is open: its fallback model serves, and says so.
            context.Response.Headers[Protocol.RequestMetadata.ServedByModelHeader] = stream.ServedBy;
        }
        var reply = new GenerateReply(stream.ModelName, stream.ModelVersion, parsed.Request.Id);
        // On generate_stream, "stream": false asks for the whole text as one event (Triton's vLLM backend does the same).
        if (!streaming || parsed.Stream == false)
        {
            var result = await GenerationResult.ReadAsync(stream, cancellationToken);
            var final = new GenerateOutput(reply, result.Text, result.FinishReason, result.Usage);
            if (!streaming)
            {
                await JsonResponse.WriteAsync(context, 200, final, WriteOutput);
                return;
            }
            using var single = new ServerSentEvents(context.Response);
            await single.StartAsync(cancellationToken);
            await single.WriteAsync(final, WriteOutput, cancellationToken);
            return;
        }
        await StreamAsync(context, reply, stream);
    }

    private static async Task StreamAsync(HttpContext context, GenerateReply reply, GenerationStream stream)
    {
        var cancellationToken = context.RequestAborted;
        using var events = new ServerSentEvents(context.Response);
        await events.StartAsync(cancellationToken);
        try
        {
            var finish = FinishReason.None;
            var completionTokens = 0;
            await foreach (var chunk in stream.Chunks.ReadAllAsync(cancellationToken))
            {
                completionTokens = chunk.CompletionTokens;
                finish = chunk.FinishReason;
                if (finish == FinishReason.Cancelled)
                {
                    break;
                }
                if (chunk.Text.Length == 0 && finish == FinishReason.None)
                {
                    continue;
                }
                var usage = new GenerationUsage(stream.PromptTokens, completionTokens);
                await events.WriteAsync(new GenerateOutput(reply, chunk.Text, finish, usage), WriteOutput, cancellationToken,
                    flush: finish != FinishReason.None || !stream.Chunks.TryPeek(out _));
                if (finish != FinishReason.None)
                {
                    break;
                }
            }
            if (finish is FinishReason.None or FinishReason.Cancelled)
            {
                finish = GenerationResult.Finished(finish, cancellationToken);
                var usage = new GenerationUsage(stream.PromptTokens, completionTokens);
                await events.WriteAsync(new GenerateOutput(reply, "", finish, usage), WriteOutput, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away; the engine saw the same token and has stopped.
        }
        catch (InferenceException e)
        {
            await events.WriteAsync(e.Message, WriteError, CancellationToken.None);
        }
        catch (Exception)
        {
            // Reported in-band without details; the error middleware logs it.
            await events.WriteAsync("internal server error", WriteError, CancellationToken.None);
            throw;
        }
    }

    /// <summary>Parses the body. Known fields are read from the top level and then from "parameters", which wins.</summary>
    private static (GenerationRequest Request, bool? Stream) ReadRequest(ReadOnlyMemory<byte> body, int maxJsonDepth, long received)
    {
        if (body.IsEmpty)
        {
            throw InferenceException.InvalidArgument("the request body is empty; expected {\"text_input\": \"...\", \"parameters\": {...}}");
        }
        using var document = RestInferCodec.ParseJson(body, maxJsonDepth);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw InferenceException.InvalidArgument("the request body must be a JSON object");
        }
        string? text = null;
        var id = "";
        long? timeout = null;
        var fields = new GenerationFields();
        foreach (var property in root.EnumerateObject())
        {
            switch (property.Name)
            {
                case "text_input":
                    text = property.Value.ValueKind == JsonValueKind.String
                        ? property.Value.GetString()
                        : throw InferenceException.InvalidArgument($"\"text_input\" must be a string, not {GenerationFields.Describe(property.Value)}");
                    break;
                case "id":
                    id = property.Value.ValueKind == JsonValueKind.String ? property.Value.GetString()! : throw InferenceException.InvalidArgument("\"id\" must be a string");
                    break;
                case "parameters":
                    break;
                case "timeout":
                    timeout = Timeout(property.Value);
                    break;
                default:
                    // Triton maps other top-level keys to the model's inputs and parameters; the ones we do not know are ignored.
                    fields.TryRead(property.Name, property.Value);
                    break;
            }
        }
        if (root.TryGetProperty("parameters", out var parameters) && parameters.ValueKind != JsonValueKind.Null)
        {
            if (parameters.ValueKind != JsonValueKind.Object)
            {
                throw InferenceException.InvalidArgument("\"parameters\" must be a JSON object");
            }
            foreach (var parameter in parameters.EnumerateObject())
            {
                if (parameter.Name == "timeout")
                {
                    timeout = Timeout(parameter.Value);
                    continue;
                }
                fields.TryRead(parameter.Name, parameter.Value);
            }
        }
        if (text is null)
        {
            throw InferenceException.InvalidArgument("the request needs \"text_input\", the prompt as a string");
        }
        var request = fields.ToRequest(text, null, null, "generate", id);
        // Triton's scheduling parameter: the whole generation's deadline, in microseconds.
        request.SetDeadline(received, timeout, 0);
        return (request, fields.Stream);
    }

    private static long Timeout(JsonElement value) =>
        InferenceRequest.TimeoutOf(value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var microseconds) ? microseconds : null);

    private sealed record GenerateReply(string ModelName, string ModelVersion, string Id);

    private readonly record struct GenerateOutput(GenerateReply Reply, string Text, FinishReason FinishReason, GenerationUsage Usage);

    /// <summary>
    /// <c>{"model_name", "model_version", "text_output"}</c>, and on the last output <c>finish_reason</c>,
    /// <c>prompt_tokens</c> and <c>completion_tokens</c>.
    /// </summary>
    private static void WriteOutput(Utf8JsonWriter w, GenerateOutput output)
    {
        w.WriteStartObject();
        w.WriteString("model_name", output.Reply.ModelName);
        w.WriteString("model_version", output.Reply.ModelVersion);
        if (output.Reply.Id.Length > 0)
        {
            w.WriteString("id", output.Reply.Id);
        }
        w.WriteString("text_output", output.Text);
        if (output.FinishReason != FinishReason.None)
        {
            w.WriteString("finish_reason", output.FinishReason.Name());
            w.WriteNumber("prompt_tokens", output.Usage.PromptTokens);
            w.WriteNumber("completion_tokens", output.Usage.CompletionTokens);
        }
        w.WriteEndObject();
    }

    private static void WriteError(Utf8JsonWriter w, string message)
    {
        w.WriteStartObject();
        w.WriteString("error", message);
        w.WriteEndObject();
    }
}
