using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Generation.Chat;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Core.Generation.Chat;

public sealed class FormatChatTemplateTests
{
    private static readonly ChatTemplateSpec ChatMl = new()
    {
        System = "<|im_start|>system\n{content}<|im_end|>\n",
        User = "<|im_start|>user\n{content}<|im_end|>\n",
        Assistant = "<|im_start|>assistant\n{content}<|im_end|>\n",
        Default = "<|im_start|>{role}\n{content}<|im_end|>\n",
        GenerationPrompt = "<|im_start|>assistant\n",
    };

    [Fact]
    public void The_default_template_is_contents_on_lines()
    {
        var prompt = FormatChatTemplate.Default.Render([new("system", "Be brief."), new("user", "ROMEO:"), new("tool", "x")]);
        Assert.Equal("Be brief.\nROMEO:\nx\n", prompt);
        Assert.Same(FormatChatTemplate.Default, FormatChatTemplate.FromSpec(null));
    }

    [Fact]
    public void Roles_use_their_formats_and_the_generation_prompt_cues_the_reply()
    {
        var template = FormatChatTemplate.FromSpec(ChatMl);
        Assert.Equal(
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>tool\nT<|im_end|>\n<|im_start|>assistant\n",
            template.Render([new("system", "S"), new("user", "U"), new("tool", "T")]));
    }

    [Fact]
    public void A_final_assistant_message_gets_no_generation_prompt()
    {
        var template = FormatChatTemplate.FromSpec(ChatMl);
        Assert.Equal("<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n",
            template.Render([new("user", "U"), new("assistant", "A")]));
    }

    [Fact]
    public void Prefix_escapes_and_fallbacks()
    {
        var template = FormatChatTemplate.FromSpec(new ChatTemplateSpec { User = "[{role}] {{{content}}}\n", Default = "({content})", Prefix = "{{start}}" });
        // System has no format of its own, so it uses Default.
        Assert.Equal("{start}(s)[user] {hi}\n", template.Render([new("system", "s"), new("user", "hi")]));
    }

    [Fact]
    public void A_role_without_a_format_is_a_client_error_naming_it()
    {
        var template = FormatChatTemplate.FromSpec(new ChatTemplateSpec { User = "{content}", Assistant = "{content}" });
        var e = Assert.Throws<InferenceException>(() => template.Render([new("user", "a"), new("tool", "b")]));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("'tool'", e.Message);
        Assert.Contains("messages[1]", e.Message);
    }

    [Fact]
    public void No_messages_is_a_client_error()
    {
        var e = Assert.Throws<InferenceException>(() => FormatChatTemplate.Default.Render([]));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
    }

    [Theory]
    [InlineData("{content", "unclosed")]
    [InlineData("{con{tent}", "unclosed")]
    [InlineData("content}", "unmatched")]
    [InlineData("{name}: {content}", "'{name}'")]
    public void Malformed_formats_are_rejected_at_construction(string format, string mentions)
    {
        var e = Assert.Throws<ArgumentException>(() => FormatChatTemplate.FromSpec(new ChatTemplateSpec { User = format }));
        Assert.Contains(mentions, e.Message);
        Assert.Contains("user", e.Message);
    }

    [Fact]
    public void Prefix_and_generation_prompt_take_no_placeholders()
    {
        var e = Assert.Throws<ArgumentException>(() => FormatChatTemplate.FromSpec(new ChatTemplateSpec { Default = "{content}", GenerationPrompt = "{role}:" }));
        Assert.Contains("generation_prompt", e.Message);
        Assert.Throws<ArgumentException>(() => FormatChatTemplate.FromSpec(new ChatTemplateSpec()));
    }
}
