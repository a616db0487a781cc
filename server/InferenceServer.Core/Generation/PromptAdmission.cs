using System.Globalization;
using InferenceServer.Configuration;
using InferenceServer.Generation.Chat;
using InferenceServer.Inference;

namespace InferenceServer.Generation;

/// <summary>
/// A generation request's input processing before it is queued (vLLM's input processor): its prompt as token ids, and
/// the number of tokens it may generate. A KV-cache decoder holds at most <see cref="GenerationSettings.MaxModelLen"/>
/// tokens per sequence, so its requests are admitted by tokens: a prompt and <c>max_tokens</c> that do not fit are
/// refused with a 400 naming the numbers, never cut short. Window decoders slide over their context and take any length.
/// </summary>
public static class PromptAdmission
{
    /// <summary>
    /// The <see cref="Exception.Data"/> key of the errors that are about the prompt itself (an id outside the
    /// vocabulary, an empty or too long prompt), so that an adapter can name the prompt: its value is
    /// <see cref="ContextLengthExceeded"/> when the prompt and completion do not fit the context, else <see cref="InvalidPrompt"/>.
    /// </summary>
    public const string PromptErrorKey = "generation.prompt_error";

    /// <summary>The prompt, or the prompt with max_tokens, exceeds the model's context length (OpenAI's error code).</summary>
    public const string ContextLengthExceeded = "context_length_exceeded";

    /// <summary>The prompt cannot be fed to the model (an id outside the vocabulary, no tokens).</summary>
    public const string InvalidPrompt = "invalid_prompt";

    /// <summary>
    /// The prompt's token ids: <see cref="GenerationRequest.PromptTokenIds"/> as they are (each checked against the
    /// vocabulary; no BOS), or the text of <see cref="GenerationRequest.Prompt"/> or of the chat-templated
    /// <see cref="GenerationRequest.Messages"/> encoded after the tokenizer's BOS. Throws InvalidArgument naming the
    /// problem when the request does not hold exactly one of them or an id is outside the vocabulary.
    /// </summary>
    public static List<int> Tokens(GenerationModel model, GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(request);
        var given = (request.Prompt is null ? 0 : 1) + (request.PromptTokenIds is null ? 0 : 1) + (request.Messages is null ? 0 : 1);
        if (given != 1)
        {
            throw InferenceException.InvalidArgument("a generation request needs exactly one of a prompt, prompt token ids or messages");
        }
        if (request.PromptTokenIds is { } ids)
        {
            if (ids.Count == 0)
            {
                throw PromptError(InvalidPrompt, "the prompt's token ids are empty; a token prompt needs at least one id");
            }
            var vocabulary = model.Tokenizer.VocabularySize;
            var tokens = new List<int>(ids.Count);
            for (var i = 0; i < ids.Count; i++)
            {
                var id = ids[i];
                if ((uint)id >= (uint)vocabulary)
                {
                    throw PromptError(InvalidPrompt, string.Create(CultureInfo.InvariantCulture,
                        $"prompt token id {id} (at position {i}) is outside the model's vocabulary: ids are 0 to {vocabulary - 1}"));
                }
                tokens.Add(id);
            }
            return tokens;
        }
        try
        {
            // A plain prompt gets the tokenizer's special tokens; a chat prompt as its template says (a Jinja template writes its own BOS).
            var prompt = request.Prompt is { } text ? new ChatPrompt(text, AddSpecialTokens: true) : model.ChatTemplate.Render(request.Messages!, request.Chat);
            var encoded = new List<int>(prompt.Text.Length + 1);
            model.Tokenizer.Encode(prompt.Text, encoded, request.AddSpecialTokens ?? prompt.AddSpecialTokens);
            return encoded;
        }
        catch (InferenceException e) when (e.Kind == InferenceErrorKind.InvalidArgument)
        {
            // Text the vocabulary cannot represent.
            e.Data[PromptErrorKey] = InvalidPrompt;
            throw;
        }
    }

    /// <summary>
    /// The tokens a request may generate: <paramref name="requested"/> (between 1 and
    /// <see cref="GenerationSettings.MaxTokensLimit"/>), or <see cref="GenerationSettings.DefaultMaxTokens"/> when it
    /// sets none. With <see cref="GenerationSettings.MaxModelLen"/> (a KV-cache decoder) the prompt and the completion
    /// must fit in it: a prompt that leaves no room, or a requested <c>max_tokens</c> beyond the room left, is
    /// InvalidArgument naming the numbers; the default shrinks to the room left (vLLM's behaviour). The messages speak
    /// of "messages" for a chat request (<paramref name="chat"/>), of "prompt" otherwise.
    /// </summary>
    public static int MaxTokens(GenerationSettings settings, int promptTokens, int? requested, bool chat = false)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (requested is { } asked && (asked < 1 || asked > settings.MaxTokensLimit))
        {
            throw InferenceException.InvalidArgument(string.Create(CultureInfo.InvariantCulture,
                $"max_tokens must be between 1 and {settings.MaxTokensLimit}, not {asked}"));
        }
        if (settings.MaxModelLen is not { } limit)
        {
            return requested ?? settings.DefaultMaxTokens;
        }
        var what = chat ? "messages" : "prompt";
        if (promptTokens == 0)
        {
            throw PromptError(InvalidPrompt, $"the {what} is empty: this model needs at least one prompt token");
        }
        if (promptTokens >= limit)
        {
            throw PromptError(ContextLengthExceeded, string.Create(CultureInfo.InvariantCulture,
                $"This model's maximum context length is {limit} tokens. However, your {what} has {promptTokens} tokens, which leaves no room for the completion (at most {limit - 1} prompt tokens). Please reduce the length of the {what}."));
        }
        var room = limit - promptTokens;
        if (requested is not { } maxTokens)
        {
            return Math.Min(settings.DefaultMaxTokens, room);
        }
        if (maxTokens > room)
        {
            throw PromptError(ContextLengthExceeded, string.Create(CultureInfo.InvariantCulture,
                $"This model's maximum context length is {limit} tokens. However, you requested {(long)promptTokens + maxTokens} tokens ({promptTokens} in the {what}, {maxTokens} in the completion). Please reduce the length of the {what} or completion."));
        }
        return maxTokens;
    }

    private static InferenceException PromptError(string code, string message)
    {
        var e = InferenceException.InvalidArgument(message);
        e.Data[PromptErrorKey] = code;
        return e;
    }
}
