namespace InferenceServer.Generation;

/// <summary>
/// Detokenizes one sequence a token at a time. Concatenating every <see cref="Append"/> result and then <see cref="Flush"/>
/// gives exactly <see cref="ITokenizer.Decode"/> of all the appended ids. Not thread-safe: one per sequence.
/// </summary>
public abstract class IncrementalDecoder
{
    /// <summary>Adds one generated token and returns the text it made final; empty while a character or merge is still incomplete.</summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when the id is outside the vocabulary.</exception>
    public abstract string Append(int tokenId);

    /// <summary>Returns whatever text is still held back, at the end of the sequence.</summary>
    public abstract string Flush();
}
