using System.Text;
using System.Text.Json;
using InferenceServer.Generation.Chat;
using InferenceServer.Http;
using InferenceServer.Http.OpenAi;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Http.OpenAi;

/// <summary>
/// A chat request's template fields read through <see cref="ChatFields"/>: the messages as a Jinja template sees them
/// (every field kept, text parts joined, tool-call arguments parsed, as vLLM hands them over), tools and template
/// variables passed on, and what cannot be honoured refused naming the field.
/// </summary>
public sealed class ChatFieldsTests
{
    private static (IReadOnlyList<ChatMessage> Messages, ChatOptions Options, bool? AddSpecialTokens) Read(string json)
    {
        var generation = Assert.Single(OpenAiRequestReader.ReadChat(Encoding.UTF8.GetBytes(json), "chatcmpl-test", maxJsonDepth: 64).Generations);
        return (generation.Messages!, generation.Chat!, generation.AddSpecialTokens);
    }

    [Fact]
    public void Messages_reach_the_template_with_every_field_parts_joined_and_arguments_parsed()
    {
        var (messages, options, addSpecial) = Read("""
            {"model": "m", "messages": [
              {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "name": "ann"},
              {"role": "assistant", "content": null, "reasoning_content": "think", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": [1, 2.5], \"y\": \"東\"}"}}]},
              {"role": "tool", "tool_call_id": "c1", "content": "42"}],
             "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
             "tool_choice": "auto", "parallel_tool_calls": true,
             "chat_template_kwargs": {"enable_thinking": false}, "documents": [{"title": "t"}],
             "add_generation_prompt": true, "chat_template": "tool_use", "add_special_tokens": true}
            """);
        Assert.Equal([new ChatMessage("user", "a\nb"), new ChatMessage("assistant", ""), new ChatMessage("tool", "42")], messages);
        var view = options.Messages!.Value;
        Assert.Equal("a\nb", view[0].GetProperty("content").GetString());
        Assert.Equal("ann", view[0].GetProperty("name").GetString());
        Assert.Equal("", view[1].GetProperty("content").GetString());
        Assert.Equal("think", view[1].GetProperty("reasoning_content").GetString());
        var arguments = view[1].GetProperty("tool_calls")[0].GetProperty("function").GetProperty("arguments");
        Assert.Equal(JsonValueKind.Object, arguments.ValueKind);
        Assert.Equal("""{"x":[1,2.5],"y":"東"}""", JsonSerializer.Serialize(arguments, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        Assert.Equal("c1", view[2].GetProperty("tool_call_id").GetString());
        Assert.True(options.HasToolCalls);
        Assert.Equal(1, options.Tools!.Value.GetArrayLength());
        Assert.Equal(JsonValueKind.False, options.TemplateKwargs!["enable_thinking"].ValueKind);
        Assert.Equal("t", options.Documents!.Value[0].GetProperty("title").GetString());
        Assert.Equal("tool_use", options.TemplateName);
        Assert.True(options.AddGenerationPrompt);
        Assert.False(options.ContinueFinalMessage);
        Assert.True(addSpecial);
    }

    [Fact]
    public void Continue_final_message_needs_add_generation_prompt_false_and_a_final_assistant_message()
    {
        var (_, options, _) = Read("""{"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "add_generation_prompt": false, "continue_final_message": true}""");
        Assert.True(options.ContinueFinalMessage);
        Assert.False(options.AddGenerationPrompt);
        Invalid("""{"model": "m", "messages": [{"role": "assistant", "content": "y"}], "continue_final_message": true}""", "continue_final_message");
        Invalid("""{"model": "m", "messages": [{"role": "user", "content": "y"}], "add_generation_prompt": false, "continue_final_message": true}""", "continue_final_message");
    }

    [Theory]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": "f"}""", "tools")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}""", "tools")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval", "function": {"name": "f"}}]}""", "tools")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "required"}""", "tool_choice")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function", "function": {"name": "f"}}}""", "tool_choice")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": 3}""", "tool_choice")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}]}""", "functions")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": [1]}""", "chat_template_kwargs")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "chat_template": "{% for %}"}""", "chat_template")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "documents": "d"}""", "documents")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x", "tool_calls": []}]}""", "messages")]
    [InlineData("""{"model": "m", "messages": [{"role": "assistant", "tool_calls": {"a": 1}}]}""", "messages")]
    [InlineData("""{"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]}""", "messages")]
    [InlineData("""{"model": "m", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{"}}]}]}""", "messages")]
    [InlineData("""{"model": "m", "messages": [{"role": "tool"}]}""", "messages")]
    [InlineData("""{"model": "m", "messages": [{"role": "user", "content": "x"}], "add_special_tokens": "yes"}""", "add_special_tokens")]
    public void What_cannot_be_honoured_is_invalid_naming_the_field(string json, string field) => Invalid(json, field);

    private static void Invalid(string json, string field)
    {
        var e = Assert.Throws<InferenceException>(() => Read(json));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Equal(field, e.Data[GenerationFields.ParamKey]);
    }
}
