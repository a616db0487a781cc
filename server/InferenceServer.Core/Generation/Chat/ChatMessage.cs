namespace InferenceServer.Generation.Chat;

/// <summary>One message of a chat conversation, as a format template sees it.</summary>
/// <param name="Role">Who wrote it: system, developer, user, assistant or tool.</param>
/// <param name="Content">The message text (text parts joined with newlines; empty for an assistant message that only calls tools).</param>
public sealed record ChatMessage(string Role, string Content);
