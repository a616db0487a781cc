namespace InferenceServer.Configuration;

/// <summary>A chat template as written in a model's configuration; every string uses <c>{content}</c>, <c>{role}</c> and <c>{{</c>/<c>}}</c> escapes.</summary>
public sealed class ChatTemplateSpec
{
    /// <summary>Format of system messages; <see cref="Default"/> when null.</summary>
    public string? System { get; set; }

    /// <summary>Format of user messages; <see cref="Default"/> when null.</summary>
    public string? User { get; set; }

    /// <summary>Format of assistant messages; <see cref="Default"/> when null.</summary>
    public string? Assistant { get; set; }

    /// <summary>Format of every other role (and of the three above when they are null); when null, such roles are rejected.</summary>
    public string? Default { get; set; }

    /// <summary>Text before the first message (no placeholders).</summary>
    public string? Prefix { get; set; }

    /// <summary>Text after the last message that cues the assistant's reply, left out when the last message is the assistant's own (no placeholders).</summary>
    public string? GenerationPrompt { get; set; }
}
