using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Generation.Chat;
using InferenceServer.Inference;

namespace InferenceServer.Http.OpenAi;

/// <summary>
/// vLLM's <c>POST /tokenize</c> and <c>POST /detokenize</c>: a prompt or a conversation (rendered by the model's chat
/// template exactly as a chat completion renders it) to token ids, and ids back to text, with the model's own tokenizer.
/// Nothing is generated and no admission applies; the answers carry <c>max_model_len</c> so that clients can size prompts.
/// </summary>
internal static partial class OpenAiEndpoints
{
    private static void MapTokenize(IEndpointRouteBuilder app)
    {
        app.MapPost("/tokenize", Guard(TokenizeAsync));
        app.MapPost("/detokenize", Guard(DetokenizeAsync));
    }

    private static async Task TokenizeAsync(HttpContext context)
    {
        // The document reads the pooled body in place, so the body lives as long as it.
        using var body = await RequestBody.ReadAsync(context.Request, context.RequestAborted);
        using var document = ParseObject(context, body.Memory);
        var root = document.RootElement;
        string? model = null;
        string? prompt = null;
        bool? addSpecialTokens = null;
        var returnTokenStrings = false;
        var chat = new ChatFields();
        var isChat = root.TryGetProperty("messages", out _);
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            if (isChat && chat.TryRead(property.Name, value))
            {
                continue;
            }
            switch (property.Name)
            {
                case "model":
                    model = ReadModelName(value);
                    break;
                case "prompt":
                    prompt = value.ValueKind == JsonValueKind.String
                        ? value.GetString()
                        : throw GenerationFields.Invalid("prompt", $"\"prompt\" must be a string, not {GenerationFields.Describe(value)}");
                    break;
                case "add_special_tokens":
                    addSpecialTokens = GenerationFields.ReadBool(property.Name, value);
                    break;
                case "return_token_strs":
                    returnTokenStrings = GenerationFields.ReadBool(property.Name, value) ?? false;
                    break;
            }
        }
        if (isChat == (prompt is not null))
        {
            throw GenerationFields.Invalid(isChat ? "prompt" : "messages",
                "the request needs exactly one of \"prompt\" (a string) and \"messages\" (a conversation, rendered by the model's chat template)");
        }
        var generation = Tokenization(context, ModelOrOnly(context, model));

        // As a completion or chat completion would tokenize it: a prompt gets the special tokens, a conversation its template's choice.
        var rendered = isChat
            ? generation.ChatTemplate.Render(chat.Messages!, chat.ToOptions())
            : new ChatPrompt(prompt!, AddSpecialTokens: true);
        var ids = new List<int>(rendered.Text.Length / 3 + 2);
        generation.Tokenizer.Encode(rendered.Text, ids, addSpecialTokens ?? rendered.AddSpecialTokens);
        var strings = returnTokenStrings ? ids.ConvertAll(generation.Tokenizer.TokenString) : null;
        var reply = new TokenizeReply(ids, strings, generation.Settings.ContextWindow);
        await JsonResponse.WriteAsync(context, 200, reply, static (w, r) =>
        {
            w.WriteStartObject();
            w.WriteNumber("count", r.Ids.Count);
            w.WriteNumber("max_model_len", r.MaxModelLen);
            w.WriteStartArray("tokens");
            foreach (var id in r.Ids)
            {
                w.WriteNumberValue(id);
            }
            w.WriteEndArray();
            if (r.Strings is { } strings)
            {
                w.WriteStartArray("token_strs");
                foreach (var s in strings)
                {
                    w.WriteStringValue(s);
                }
                w.WriteEndArray();
            }
            else
            {
                w.WriteNull("token_strs");
            }
            w.WriteEndObject();
        });
    }

    private static async Task DetokenizeAsync(HttpContext context)
    {
        // The document reads the pooled body in place, so the body lives as long as it.
        using var body = await RequestBody.ReadAsync(context.Request, context.RequestAborted);
        using var document = ParseObject(context, body.Memory);
        var root = document.RootElement;
        string? model = null;
        int[]? tokens = null;
        foreach (var property in root.EnumerateObject())
        {
            switch (property.Name)
            {
                case "model":
                    model = ReadModelName(property.Value);
                    break;
                case "tokens":
                    tokens = property.Value.ValueKind == JsonValueKind.Array
                        ? OpenAiRequestReader.ReadTokenIds(property.Value, "tokens", "tokens", allowEmpty: true)
                        : throw GenerationFields.Invalid("tokens", $"\"tokens\" must be an array of token ids, not {GenerationFields.Describe(property.Value)}");
                    break;
            }
        }
        if (tokens is null)
        {
            throw GenerationFields.Invalid("tokens", "the request needs \"tokens\", an array of token ids");
        }
        var generation = Tokenization(context, ModelOrOnly(context, model));
        var tokenizer = generation.Tokenizer;
        for (var i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)tokenizer.VocabularySize)
            {
                throw GenerationFields.Invalid("tokens", $"tokens[{i}] is {tokens[i]}, outside the model's vocabulary: ids are 0 to {tokenizer.VocabularySize - 1}");
            }
        }
        // As vLLM (and transformers' decode) does: special tokens are kept.
        var text = tokenizer.Decode(tokens, skipSpecialTokens: false);
        await JsonResponse.WriteAsync(context, 200, text, static (w, t) =>
        {
            w.WriteStartObject();
            w.WriteString("prompt", t);
            w.WriteEndObject();
        });
    }

    private static GenerationModel Tokenization(HttpContext context, string model)
    {
        try
        {
            return Generator(context).Tokenization(model);
        }
        catch (InferenceException e) when (e.Kind is InferenceErrorKind.NotFound or InferenceErrorKind.InvalidArgument)
        {
            e.Data[GenerationFields.ParamKey] = "model";
            throw;
        }
    }

    private sealed record TokenizeReply(List<int> Ids, List<string>? Strings, int MaxModelLen);

    private static JsonDocument ParseObject(HttpContext context, ReadOnlyMemory<byte> body)
    {
        if (body.IsEmpty)
        {
            throw InferenceException.InvalidArgument("the request body is empty; expected a JSON object");
        }
        var document = RestInferCodec.ParseJson(body, context.RequestServices.GetRequiredService<RequestLimits>().MaxJsonDepth);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw InferenceException.InvalidArgument("the request body must be a JSON object");
        }
        return document;
    }

    private static string? ReadModelName(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.String => value.GetString(),
        _ => throw GenerationFields.Invalid("model", "\"model\" must be a string"),
    };

    // vLLM serves one model, so its "model" is optional; here it may be left out only when one generative model is ready.
    private static string ModelOrOnly(HttpContext context, string? model)
    {
        if (!string.IsNullOrEmpty(model))
        {
            return model;
        }
        var models = Generator(context).ListModels();
        return models.Count == 1
            ? models[0].Name
            : throw GenerationFields.Invalid("model", $"the request needs \"model\": {models.Count} generative models are ready (GET /v1/models lists them)");
    }
}
