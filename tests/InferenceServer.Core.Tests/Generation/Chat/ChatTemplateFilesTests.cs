using System.Text.Json;
using InferenceServer.Generation.Chat;
using InferenceServer.Inference;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Generation.Chat;

/// <summary>Chat templates are found beside the tokenizer as transformers finds them, and rendered with vLLM's request options.</summary>
public sealed class ChatTemplateFilesTests
{
    private const string Echo = "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";

    private static string Directory(params (string Path, string Text)[] files)
    {
        var dir = Paths.NewTempDirectory("chat-files");
        foreach (var (path, text) in files)
        {
            var full = System.IO.Path.Combine(dir, path);
            System.IO.Directory.CreateDirectory(System.IO.Path.GetDirectoryName(full)!);
            File.WriteAllText(full, text);
        }
        return dir;
    }

    private static JinjaChatTemplate Find(string dir) =>
        ChatTemplateFiles.Find(dir, p => System.IO.Path.GetRelativePath(dir, p)) ?? throw new InvalidOperationException("no template found");

    private static string Render(IChatTemplate template, ChatOptions? options = null, params ChatMessage[] messages) =>
        template.Render(messages.Length > 0 ? messages : [new ChatMessage("user", "hi")], options).Text;

    [Fact]
    public void A_tokenizer_config_string_is_the_default_template_with_the_special_tokens_as_variables()
    {
        var dir = Directory(("tokenizer_config.json", JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["chat_template"] = Echo,
            ["bos_token"] = new Dictionary<string, object> { ["content"] = "<s>", ["lstrip"] = false },
            ["eos_token"] = "</s>",
        })));
        var template = Find(dir);
        Assert.Equal("tokenizer_config.json", template.Source);
        Assert.Equal(["default"], template.Names);
        var prompt = template.Render([new ChatMessage("system", "S"), new ChatMessage("user", "U")], null);
        Assert.Equal("<s>[system]S[user]U[assistant]", prompt.Text);
        // The template wrote the BOS, so the tokenizer must not add another.
        Assert.False(prompt.AddSpecialTokens);
    }

    [Fact]
    public void Chat_template_jinja_wins_over_json_and_tokenizer_config_and_additional_templates_are_named()
    {
        var dir = Directory(
            ("chat_template.jinja", "jinja:{{ messages[0].content }}"),
            ("chat_template.json", JsonSerializer.Serialize(new { chat_template = "json" })),
            ("tokenizer_config.json", JsonSerializer.Serialize(new { chat_template = "config" })),
            ("additional_chat_templates/tool_use.jinja", "tools:{{ tools | length }}"),
            ("additional_chat_templates/rag.jinja", "rag:{{ documents[0].title }}"));
        var template = Find(dir);
        Assert.Equal(["default", "rag", "tool_use"], template.Names);
        Assert.Equal("jinja:hi", Render(template));
        // transformers' choice: "tool_use" when the request has tools, "default" otherwise, or the one named.
        var tools = JsonDocument.Parse("""[{"type": "function", "function": {"name": "f"}}]""").RootElement;
        Assert.Equal("tools:1", Render(template, new ChatOptions { Tools = tools }));
        var documents = JsonDocument.Parse("""[{"title": "T", "text": "x"}]""").RootElement;
        Assert.Equal("rag:T", Render(template, new ChatOptions { TemplateName = "rag", Documents = documents }));
        var e = Assert.Throws<InferenceException>(() => Render(template, new ChatOptions { TemplateName = "nope" }));
        Assert.Contains("'nope'", e.Message, StringComparison.Ordinal);

        File.Delete(System.IO.Path.Combine(dir, "chat_template.jinja"));
        Assert.Equal("json", Render(Find(dir)));
        File.Delete(System.IO.Path.Combine(dir, "chat_template.json"));
        Assert.Equal("config", Render(Find(dir)));
    }

    [Fact]
    public void A_list_of_named_templates_in_tokenizer_config_needs_a_default_or_a_name()
    {
        var dir = Directory(("tokenizer_config.json", """{"chat_template": [{"name": "a", "template": "A"}, {"name": "b", "template": "B"}]}"""));
        var template = Find(dir);
        Assert.Equal("B", Render(template, new ChatOptions { TemplateName = "b" }));
        var e = Assert.Throws<InferenceException>(() => Render(template));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("none named 'default'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void No_template_files_means_none_found_and_malformed_ones_fail_naming_the_file()
    {
        Assert.Null(ChatTemplateFiles.Find(Directory(("tokenizer_config.json", """{"eos_token": "x"}""")), p => p));
        var bad = Assert.Throws<ArgumentException>(() => Find(Directory(("tokenizer_config.json", """{"chat_template": 5}"""))));
        Assert.Contains("tokenizer_config.json", bad.Message, StringComparison.Ordinal);
        var unparsable = Assert.Throws<ArgumentException>(() => Find(Directory(("chat_template.jinja", "{% for m in messages %}no end"))));
        Assert.Contains("chat_template.jinja", unparsable.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Find(Directory(("tokenizer_config.json", "{not json"))));
    }

    [Fact]
    public void Request_options_reach_the_template_and_bad_combinations_are_invalid_arguments()
    {
        var template = Find(Directory(("chat_template.jinja",
            "{% if not messages[0].content %}{{ raise_exception('empty content: ' ~ messages[0].role) }}{% endif %}" +
            "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}{{ flavour | default('plain') }}")));
        var kwargs = new Dictionary<string, JsonElement> { ["flavour"] = JsonDocument.Parse("\"spicy\"").RootElement };
        Assert.Equal("<user>hi</user><assistant>spicy", Render(template, new ChatOptions { TemplateKwargs = kwargs }));
        Assert.Equal("<user>hi</user>plain", Render(template, new ChatOptions { AddGenerationPrompt = false }));

        var raised = Assert.Throws<InferenceException>(() => Render(template, null, new ChatMessage("user", "")));
        Assert.Equal(InferenceErrorKind.InvalidArgument, raised.Kind);
        Assert.Equal("empty content: user", raised.Message);

        var reserved = new Dictionary<string, JsonElement> { ["messages"] = JsonDocument.Parse("[]").RootElement };
        Assert.Throws<InferenceException>(() => Render(template, new ChatOptions { TemplateKwargs = reserved }));
        Assert.Throws<InferenceException>(() => Render(template, new ChatOptions { ContinueFinalMessage = true }));
    }

    [Fact]
    public void Continue_final_message_cuts_after_the_final_content_as_transformers_does()
    {
        var template = Find(Directory(("chat_template.jinja", "{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</{{ m.role }}>\n{% endfor %}")));
        ChatMessage[] messages = [new("user", "Count"), new("assistant", "One, two, ")];
        var options = new ChatOptions { ContinueFinalMessage = true, AddGenerationPrompt = false };
        // The template trimmed the trailing space, so the cut keeps only what it wrote.
        Assert.Equal("<user>Count</user>\n<assistant>One, two,", Render(template, options, messages));
        var kept = Find(Directory(("chat_template.jinja", "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}")));
        Assert.Equal("<user>Count</user><assistant>One, two, ", Render(kept, options, messages));
    }

    [Fact]
    public void A_format_template_refuses_what_it_cannot_show()
    {
        var tools = JsonDocument.Parse("""[{"type": "function", "function": {"name": "f"}}]""").RootElement;
        Assert.Throws<InferenceException>(() => FormatChatTemplate.Default.Render([new ChatMessage("user", "x")], new ChatOptions { Tools = tools }));
        Assert.Throws<InferenceException>(() => FormatChatTemplate.Default.Render([new ChatMessage("user", "x")], new ChatOptions { HasToolCalls = true }));
        var prompt = FormatChatTemplate.Default.Render([new ChatMessage("user", "x"), new ChatMessage("tool", "y")], new ChatOptions());
        Assert.Equal("x\ny\n", prompt.Text);
        Assert.True(prompt.AddSpecialTokens);
    }
}
