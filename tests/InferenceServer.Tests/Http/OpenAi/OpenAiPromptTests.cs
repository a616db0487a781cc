using System.Text;
using InferenceServer.Http;
using InferenceServer.Http.OpenAi;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Http.OpenAi;

/// <summary>
/// <see cref="OpenAiRequestReader"/> called directly: every form of a completions <c>prompt</c> the OpenAI API and vLLM
/// accept becomes one generation request per prompt with the same fields, and every other form is InvalidArgument with
/// <c>param</c> "prompt" and a message naming the offending element.
/// </summary>
public sealed class OpenAiPromptTests
{
    private static OpenAiRequest Read(string json) =>
        OpenAiRequestReader.ReadCompletion(Encoding.UTF8.GetBytes(json), "cmpl-test", maxJsonDepth: 64);

    [Fact]
    public void A_string_and_an_array_of_one_string_are_one_text_prompt()
    {
        foreach (var prompt in (string[])["\"To be\"", "[\"To be\"]"])
        {
            var generation = Assert.Single(Read($$"""{"model": "m", "prompt": {{prompt}}}""").Generations);
            Assert.Equal("To be", generation.Prompt);
            Assert.Null(generation.PromptTokenIds);
            Assert.Null(generation.Messages);
        }
    }

    [Fact]
    public void An_array_of_integers_is_one_token_prompt()
    {
        var generation = Assert.Single(Read("""{"model": "m", "prompt": [5, 0, 17, 2147483647]}""").Generations);
        Assert.Null(generation.Prompt);
        Assert.Equal([5, 0, 17, int.MaxValue], generation.PromptTokenIds);
    }

    [Fact]
    public void Arrays_of_strings_and_of_id_arrays_are_one_prompt_each_with_the_same_fields()
    {
        var texts = Read("""{"model": "m", "prompt": ["a", "", "c"], "max_tokens": 9, "temperature": 0.5, "stop": "x", "seed": 3}""");
        Assert.Equal(["a", "", "c"], texts.Generations.Select(g => g.Prompt));
        Assert.All(texts.Generations, g =>
        {
            Assert.Null(g.PromptTokenIds);
            Assert.Equal(9, g.MaxTokens);
            Assert.Equal(0.5f, g.Sampling.Temperature);
            Assert.Equal(3UL, g.Sampling.Seed);
            Assert.Equal(["x"], g.Stop);
            Assert.Equal("cmpl-test", g.Id);
            Assert.Equal("text_completion", g.Operation);
        });

        var ids = Read("""{"model": "m", "prompt": [[1, 2], [3], [4, 5, 6]], "stream": true}""");
        Assert.True(ids.Stream);
        Assert.Equal(3, ids.Generations.Count);
        Assert.All(ids.Generations, g => Assert.Null(g.Prompt));
        Assert.Equal([1, 2], ids.Generations[0].PromptTokenIds);
        Assert.Equal([3], ids.Generations[1].PromptTokenIds);
        Assert.Equal([4, 5, 6], ids.Generations[2].PromptTokenIds);
    }

    public static TheoryData<string, string> BadPrompts => new()
    {
        { "[]", "\"prompt\" is an empty array" },
        { "[[]]", "prompt[0] is an empty array of token ids" },
        { "[[1], []]", "prompt[1] is an empty array of token ids" },
        { "[1, \"2\"]", "prompt[1] must be a token id (a non-negative integer), not a string" },
        { "[\"a\", 1]", "prompt[1] must be a string like prompt[0]" },
        { "[[\"1\"]]", "prompt[0][0] must be a token id (a non-negative integer), not a string" },
        { "[1.5]", "prompt[0] must be a token id (a non-negative integer), not 1.5" },
        { "[1, 2.0]", "prompt[1] must be a token id (a non-negative integer), not 2.0" },
        { "[[1, 2e3]]", "prompt[0][1] must be a token id (a non-negative integer), not 2e3" },
        { "[-1]", "prompt[0] must be a token id (a non-negative integer), not -1" },
        { "[[4], [0, -7]]", "prompt[1][1] must be a token id (a non-negative integer), not -7" },
        { "[3000000000]", "prompt[0] is 3000000000, a token id outside any vocabulary" },
        { "[[[1]]]", "prompt[0][0] must be a token id (a non-negative integer), not an array" },
        { "[1, [2]]", "prompt[1] must be a token id (a non-negative integer), not an array" },
        { "[[1], 2]", "prompt[1] must be an array of token ids like prompt[0]" },
        { "[[1], \"a\"]", "prompt[1] must be an array of token ids like prompt[0]" },
        { "[true]", "prompt[0] must be a string, a token id or an array of token ids, not true" },
        { "[null]", "prompt[0] must be a string, a token id or an array of token ids, not null" },
        { "[{}]", "prompt[0] must be a string, a token id or an array of token ids, not an object" },
        { "7", "\"prompt\" must be a string, an array of strings, an array of token ids or an array of arrays of token ids, not 7" },
        { "{\"ids\": [1]}", "not an object" },
        { "null", "not null" },
    };

    [Theory]
    [MemberData(nameof(BadPrompts))]
    public void Every_other_form_is_invalid_naming_the_element(string prompt, string message)
    {
        var e = Assert.Throws<InferenceException>(() => Read($$"""{"model": "m", "prompt": {{prompt}}}"""));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Equal("prompt", e.Data[GenerationFields.ParamKey]);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_chat_request_is_one_generation_of_its_messages()
    {
        var chat = OpenAiRequestReader.ReadChat(Encoding.UTF8.GetBytes("""{"model": "m", "messages": [{"role": "user", "content": "Hi"}]}"""), "chatcmpl-test", 64);
        var generation = Assert.Single(chat.Generations);
        Assert.Null(generation.Prompt);
        Assert.Null(generation.PromptTokenIds);
        Assert.Equal("Hi", Assert.Single(generation.Messages!).Content);
    }
}
