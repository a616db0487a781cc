using InferenceServer.Inference;

namespace InferenceServer.Generation;

/// <summary>A generation read to its end, for the adapters' non-streaming forms.</summary>
public sealed record GenerationResult(string Text, FinishReason FinishReason, GenerationUsage Usage)
{
    /// <summary>
    /// Reads every chunk of <paramref name="stream"/>. The engine's errors surface as <see cref="InferenceException"/>;
    /// a generation cut short while the client still waits (its deadline passed) is DEADLINE_EXCEEDED.
    /// </summary>
    public static async Task<GenerationResult> ReadAsync(GenerationStream stream, CancellationToken cancellationToken)
    {
        var text = new System.Text.StringBuilder();
        var finish = FinishReason.None;
        var completionTokens = 0;
        await foreach (var chunk in stream.Chunks.ReadAllAsync(cancellationToken))
        {
            text.Append(chunk.Text);
            completionTokens = chunk.CompletionTokens;
            if (chunk.FinishReason != FinishReason.None)
            {
                finish = chunk.FinishReason;
                break;
            }
        }
        return new GenerationResult(text.ToString(), Finished(finish, cancellationToken), new GenerationUsage(stream.PromptTokens, completionTokens));
    }

    /// <summary>
    /// The finish reason to report. <see cref="FinishReason.Cancelled"/> means nothing more is sent: the client went
    /// away (throws <see cref="OperationCanceledException"/>) or its deadline passed. A stream that ends without a
    /// reason ended naturally ("stop").
    /// </summary>
    public static FinishReason Finished(FinishReason reason, CancellationToken cancellationToken)
    {
        if (reason == FinishReason.Cancelled)
        {
            cancellationToken.ThrowIfCancellationRequested();
            throw new InferenceException(InferenceErrorKind.DeadlineExceeded, "the generation was stopped before it finished (its deadline passed)");
        }
        return reason == FinishReason.None ? FinishReason.Stop : reason;
    }
}
