using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Generation.Chat;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Core.Generation;

/// <summary>
/// <see cref="PromptAdmission"/>: a prompt's token ids (a token prompt as it is, text after the BOS), and admission by
/// tokens for a decoder with a context length (<see cref="GenerationSettings.MaxModelLen"/>): what does not fit is a 400
/// naming the numbers, a missing max_tokens shrinks to the room left, and a window decoder keeps taking any length.
/// </summary>
public sealed class PromptAdmissionTests
{
    private const string Vocabulary = "abcdefg\n";

    private static GenerationSettings Settings(int? maxModelLen, int defaultMaxTokens = 16, int maxTokensLimit = 100) => new()
    {
        Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = Vocabulary },
        ContextWindow = maxModelLen ?? 8,
        InputName = "input_ids",
        LogitsName = "logits",
        LogitsWidth = 10,
        MaxRunningSequences = 2,
        MaxWaitingSequences = 2,
        DefaultMaxTokens = defaultMaxTokens,
        MaxTokensLimit = maxTokensLimit,
        MaxModelLen = maxModelLen,
    };

    private static GenerationModel Model(ITokenizer tokenizer) => new(Settings(32), tokenizer, FormatChatTemplate.Default);

    [Fact]
    public void Token_ids_are_the_prompt_as_they_are_without_the_bos_that_text_gets()
    {
        var model = Model(new WithBos(new CharacterTokenizer(Vocabulary), bos: 6));
        Assert.Equal([2, 0, 1], PromptAdmission.Tokens(model, new GenerationRequest { PromptTokenIds = [2, 0, 1] }));
        Assert.Equal([6, 2, 0, 1], PromptAdmission.Tokens(model, new GenerationRequest { Prompt = "cab" }));
        Assert.Equal([6, 2, 0, 1, 7], PromptAdmission.Tokens(model, new GenerationRequest { Messages = [new ChatMessage("user", "cab")] }));
    }

    [Theory]
    [InlineData(8, "prompt token id 8 (at position 1) is outside the model's vocabulary: ids are 0 to 7")]
    [InlineData(-1, "prompt token id -1 (at position 1) is outside the model's vocabulary: ids are 0 to 7")]
    [InlineData(int.MaxValue, "prompt token id 2147483647 (at position 1)")]
    public void Ids_outside_the_vocabulary_are_refused_naming_the_id_and_the_range(int id, string message)
    {
        var model = Model(new CharacterTokenizer(Vocabulary));
        var e = Assert.Throws<InferenceException>(() => PromptAdmission.Tokens(model, new GenerationRequest { PromptTokenIds = [1, id, 2] }));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Equal(PromptAdmission.InvalidPrompt, e.Data[PromptAdmission.PromptErrorKey]);
    }

    [Fact]
    public void A_request_needs_exactly_one_prompt_form_and_a_token_prompt_at_least_one_id()
    {
        var model = Model(new CharacterTokenizer(Vocabulary));
        GenerationRequest[] wrong =
        [
            new(),
            new() { Prompt = "a", PromptTokenIds = [1] },
            new() { PromptTokenIds = [1], Messages = [new ChatMessage("user", "a")] },
            new() { Prompt = "a", Messages = [new ChatMessage("user", "a")] },
        ];
        foreach (var request in wrong)
        {
            var e = Assert.Throws<InferenceException>(() => PromptAdmission.Tokens(model, request));
            Assert.Contains("exactly one of a prompt, prompt token ids or messages", e.Message, StringComparison.Ordinal);
        }
        var empty = Assert.Throws<InferenceException>(() => PromptAdmission.Tokens(model, new GenerationRequest { PromptTokenIds = [] }));
        Assert.Equal(InferenceErrorKind.InvalidArgument, empty.Kind);
        Assert.Contains("token ids are empty", empty.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_prompt_and_completion_beyond_the_context_length_are_refused_naming_the_numbers()
    {
        var settings = Settings(maxModelLen: 2048, maxTokensLimit: 4096);
        var e = Assert.Throws<InferenceException>(() => PromptAdmission.MaxTokens(settings, promptTokens: 1900, requested: 200));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Equal("This model's maximum context length is 2048 tokens. However, you requested 2100 tokens (1900 in the prompt, 200 in the completion). Please reduce the length of the prompt or completion.", e.Message);
        Assert.Equal(PromptAdmission.ContextLengthExceeded, e.Data[PromptAdmission.PromptErrorKey]);

        var chat = Assert.Throws<InferenceException>(() => PromptAdmission.MaxTokens(settings, 2000, 49, chat: true));
        Assert.Contains("you requested 2049 tokens (2000 in the messages, 49 in the completion)", chat.Message, StringComparison.Ordinal);

        // Exactly full fits.
        Assert.Equal(148, PromptAdmission.MaxTokens(settings, 1900, 148));
        Assert.Equal(1, PromptAdmission.MaxTokens(settings, 2047, 1));
    }

    [Theory]
    [InlineData(2048)]
    [InlineData(3000)]
    public void A_prompt_that_fills_the_context_is_refused_naming_its_length_and_the_limit(int promptTokens)
    {
        var settings = Settings(maxModelLen: 2048);
        foreach (var requested in (int?[])[null, 1])
        {
            var e = Assert.Throws<InferenceException>(() => PromptAdmission.MaxTokens(settings, promptTokens, requested));
            Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
            Assert.Contains("maximum context length is 2048 tokens", e.Message, StringComparison.Ordinal);
            Assert.Contains($"your prompt has {promptTokens} tokens", e.Message, StringComparison.Ordinal);
            Assert.Contains("at most 2047 prompt tokens", e.Message, StringComparison.Ordinal);
            Assert.Equal(PromptAdmission.ContextLengthExceeded, e.Data[PromptAdmission.PromptErrorKey]);
        }
    }

    [Fact]
    public void Without_max_tokens_the_default_shrinks_to_the_room_left()
    {
        var settings = Settings(maxModelLen: 100, defaultMaxTokens: 30);
        Assert.Equal(30, PromptAdmission.MaxTokens(settings, promptTokens: 10, requested: null));
        Assert.Equal(30, PromptAdmission.MaxTokens(settings, promptTokens: 70, requested: null));
        Assert.Equal(25, PromptAdmission.MaxTokens(settings, promptTokens: 75, requested: null));
        Assert.Equal(1, PromptAdmission.MaxTokens(settings, promptTokens: 99, requested: null));
    }

    [Fact]
    public void An_empty_prompt_has_nothing_to_start_a_context_length_decoder_from()
    {
        var e = Assert.Throws<InferenceException>(() => PromptAdmission.MaxTokens(Settings(maxModelLen: 100), promptTokens: 0, requested: 5));
        Assert.Contains("the prompt is empty", e.Message, StringComparison.Ordinal);
        Assert.Equal(PromptAdmission.InvalidPrompt, e.Data[PromptAdmission.PromptErrorKey]);
        // A window decoder pads its window: nothing changes for it.
        Assert.Equal(5, PromptAdmission.MaxTokens(Settings(maxModelLen: null), promptTokens: 0, requested: 5));
    }

    [Fact]
    public void A_window_decoder_takes_any_prompt_length_and_max_tokens_keeps_its_own_bounds()
    {
        var window = Settings(maxModelLen: null, defaultMaxTokens: 16, maxTokensLimit: 100);
        Assert.Equal(16, PromptAdmission.MaxTokens(window, promptTokens: 100_000, requested: null));
        Assert.Equal(100, PromptAdmission.MaxTokens(window, promptTokens: 100_000, requested: 100));
        foreach (var settings in (GenerationSettings[])[window, Settings(maxModelLen: 2048, maxTokensLimit: 100)])
        {
            var tooMany = Assert.Throws<InferenceException>(() => PromptAdmission.MaxTokens(settings, 5, 101));
            Assert.Equal("max_tokens must be between 1 and 100, not 101", tooMany.Message);
            Assert.False(tooMany.Data.Contains(PromptAdmission.PromptErrorKey), "max_tokens alone is not the prompt's fault");
            Assert.Throws<InferenceException>(() => PromptAdmission.MaxTokens(settings, 5, 0));
        }
    }

    /// <summary>A tokenizer that puts <c>bos</c> before the prompt, as SentencePiece models do.</summary>
    private sealed class WithBos(ITokenizer inner, int bos) : ITokenizer
    {
        public int VocabularySize => inner.VocabularySize;

        public int? EosTokenId => inner.EosTokenId;

        public int? BosTokenId => bos;

        public void Encode(string text, List<int> ids) => inner.Encode(text, ids);

        public IncrementalDecoder CreateDecoder() => inner.CreateDecoder();

        public IncrementalDecoder CreateDecoder(ReadOnlySpan<int> context) => inner.CreateDecoder(context);

        public string Decode(ReadOnlySpan<int> ids) => inner.Decode(ids);
    }
}
