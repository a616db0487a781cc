using System.Text.Json;
using InferenceServer.Generation;
using InferenceServer.Protocol;

namespace InferenceServer.Http.OpenAi;

/// <summary>What every object of one OpenAI response shares: the kind, the id, the creation time and the model.</summary>
internal sealed record OpenAiReply(bool Chat, string Id, long Created, string Model);

/// <summary>One streamed chunk of choice <see cref="Index"/>: a text delta (null for none), its finish reason, and whether usage is written as null.</summary>
internal readonly record struct OpenAiDelta(OpenAiReply Reply, int Index, string? Text, FinishReason FinishReason, bool FirstChatChunk, bool UsageNull);

/// <summary>Writes the OpenAI API's JSON objects: model lists, completions, stream chunks and errors, field for field as OpenAI writes them.</summary>
internal static class OpenAiResponseWriter
{
    public const string OwnedBy = "inference-server";

    public static void ModelList(Utf8JsonWriter w, IReadOnlyList<GenerativeModelInfo> models)
    {
        w.WriteStartObject();
        w.WriteString("object", "list");
        w.WriteStartArray("data");
        foreach (var model in models)
        {
            Model(w, model);
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static void Model(Utf8JsonWriter w, GenerativeModelInfo model)
    {
        w.WriteStartObject();
        w.WriteString("id", model.Name);
        w.WriteString("object", "model");
        w.WriteNumber("created", model.CreatedUnixSeconds);
        w.WriteString("owned_by", OwnedBy);
        // vLLM's extension: the context window, which clients use to size their prompts.
        w.WriteNumber("max_model_len", model.ContextWindow);
        w.WriteEndObject();
    }

    /// <summary>
    /// A whole <c>text_completion</c> or <c>chat.completion</c>: choice i is <paramref name="results"/>[i] (one per
    /// prompt); the usage adds up every choice's, as OpenAI and vLLM count it.
    /// </summary>
    public static void Completion(Utf8JsonWriter w, OpenAiReply reply, IReadOnlyList<GenerationResult> results)
    {
        w.WriteStartObject();
        Header(w, reply, reply.Chat ? "chat.completion" : "text_completion");
        w.WriteStartArray("choices");
        int promptTokens = 0, completionTokens = 0;
        for (var i = 0; i < results.Count; i++)
        {
            var result = results[i];
            promptTokens += result.Usage.PromptTokens;
            completionTokens += result.Usage.CompletionTokens;
            w.WriteStartObject();
            w.WriteNumber("index", i);
            if (reply.Chat)
            {
                w.WriteStartObject("message");
                w.WriteString("role", "assistant");
                w.WriteString("content", result.Text);
                w.WriteEndObject();
            }
            else
            {
                w.WriteString("text", result.Text);
            }
            w.WriteNull("logprobs");
            w.WriteString("finish_reason", result.FinishReason.Name());
            w.WriteEndObject();
        }
        w.WriteEndArray();
        Usage(w, new GenerationUsage(promptTokens, completionTokens));
        w.WriteEndObject();
    }

    /// <summary>A <c>text_completion</c> or <c>chat.completion.chunk</c> stream chunk.</summary>
    public static void Chunk(Utf8JsonWriter w, OpenAiDelta delta)
    {
        var reply = delta.Reply;
        w.WriteStartObject();
        Header(w, reply, reply.Chat ? "chat.completion.chunk" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", delta.Index);
        if (reply.Chat)
        {
            w.WriteStartObject("delta");
            if (delta.FirstChatChunk)
            {
                w.WriteString("role", "assistant");
                w.WriteString("content", "");
            }
            else if (delta.Text is { Length: > 0 } text)
            {
                w.WriteString("content", text);
            }
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", delta.Text ?? "");
        }
        w.WriteNull("logprobs");
        if (delta.FinishReason == FinishReason.None)
        {
            w.WriteNull("finish_reason");
        }
        else
        {
            w.WriteString("finish_reason", delta.FinishReason.Name());
        }
        w.WriteEndObject();
        w.WriteEndArray();
        if (delta.UsageNull)
        {
            w.WriteNull("usage");
        }
        w.WriteEndObject();
    }

    /// <summary>The extra last chunk of <c>stream_options.include_usage</c>: no choices, the usage.</summary>
    public static void UsageChunk(Utf8JsonWriter w, (OpenAiReply Reply, GenerationUsage Usage) state)
    {
        w.WriteStartObject();
        Header(w, state.Reply, state.Reply.Chat ? "chat.completion.chunk" : "text_completion");
        w.WriteStartArray("choices");
        w.WriteEndArray();
        Usage(w, state.Usage);
        w.WriteEndObject();
    }

    /// <summary>OpenAI's error body: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
    public static void Error(Utf8JsonWriter w, OpenAiError error)
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", error.Message);
        w.WriteString("type", error.Type);
        if (error.Param is null)
        {
            w.WriteNull("param");
        }
        else
        {
            w.WriteString("param", error.Param);
        }
        if (error.Code is null)
        {
            w.WriteNull("code");
        }
        else
        {
            w.WriteString("code", error.Code);
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void Header(Utf8JsonWriter w, OpenAiReply reply, string objectType)
    {
        w.WriteString("id", reply.Id);
        w.WriteString("object", objectType);
        w.WriteNumber("created", reply.Created);
        w.WriteString("model", reply.Model);
    }

    private static void Usage(Utf8JsonWriter w, GenerationUsage usage)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", usage.PromptTokens);
        w.WriteNumber("completion_tokens", usage.CompletionTokens);
        w.WriteNumber("total_tokens", usage.TotalTokens);
        w.WriteEndObject();
    }
}

/// <summary>An error in OpenAI's terms: the HTTP status, the message, the error type, and the offending field and code if any.</summary>
internal sealed record OpenAiError(int Status, string Message, string Type, string? Param = null, string? Code = null);
