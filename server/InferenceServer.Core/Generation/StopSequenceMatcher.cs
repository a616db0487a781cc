using InferenceServer.Inference;

namespace InferenceServer.Generation;

/// <summary>What <see cref="StopSequenceMatcher.Append"/> found.</summary>
public enum StopResult
{
    /// <summary>No stop sequence yet: keep generating.</summary>
    Continue,

    /// <summary>A stop sequence completed: stop generating; nothing after it is ever emitted.</summary>
    Stopped,
}

/// <summary>
/// Finds OpenAI-style stop sequences in streamed text. Text that could still turn out to begin a stop sequence is held back
/// until resolved, so the emitted text is exactly the full text cut before the first stop sequence to complete (the stop
/// sequence itself is not emitted). Not thread-safe: one per sequence.
/// </summary>
public sealed class StopSequenceMatcher
{
    /// <summary>The most stop sequences a request may give (OpenAI's limit).</summary>
    public const int MaxStopSequences = 4;

    private readonly string[] _stops;
    // Held-back text: the longest suffix of the text so far that is a proper prefix of some stop sequence.
    private string _pending = "";

    /// <summary>Creates a matcher for <paramref name="stops"/> (null or empty: none).</summary>
    /// <exception cref="InferenceException">InvalidArgument for more than four stop sequences or an empty one.</exception>
    public StopSequenceMatcher(IReadOnlyList<string>? stops)
    {
        stops ??= [];
        if (stops.Count > MaxStopSequences)
        {
            throw InferenceException.InvalidArgument($"stop may contain at most {MaxStopSequences} sequences, got {stops.Count}");
        }
        for (var i = 0; i < stops.Count; i++)
        {
            if (string.IsNullOrEmpty(stops[i]))
            {
                throw InferenceException.InvalidArgument($"stop[{i}] is empty");
            }
        }
        _stops = [.. stops];
    }

    /// <summary>Whether a stop sequence has matched.</summary>
    public bool IsStopped => MatchedStop is not null;

    /// <summary>The stop sequence that matched, or null.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>
    /// Adds generated text; <paramref name="emit"/> is the text now safe to send. On <see cref="StopResult.Stopped"/> it is the
    /// text before the stop sequence, and every later call emits nothing.
    /// </summary>
    public StopResult Append(string delta, out string emit)
    {
        ArgumentNullException.ThrowIfNull(delta);
        if (IsStopped)
        {
            emit = "";
            return StopResult.Stopped;
        }
        if (_stops.Length == 0)
        {
            emit = delta;
            return StopResult.Continue;
        }
        var text = _pending.Length == 0 ? delta : _pending + delta;
        // The first stop to complete wins (earliest end; on a tie the longer, earlier-starting one), so the result does not
        // depend on how the text was split into deltas. Earlier text held no complete stop, so any match ends in this delta.
        var cut = -1;
        var bestEnd = int.MaxValue;
        foreach (var stop in _stops)
        {
            var at = text.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (at + stop.Length < bestEnd || (at + stop.Length == bestEnd && at < cut)))
            {
                bestEnd = at + stop.Length;
                cut = at;
                MatchedStop = stop;
            }
        }
        if (cut >= 0)
        {
            emit = text[..cut];
            _pending = "";
            return StopResult.Stopped;
        }
        var hold = 0;
        foreach (var stop in _stops)
        {
            for (var length = Math.Min(stop.Length - 1, text.Length); length > hold; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    hold = length;
                    break;
                }
            }
        }
        emit = hold == 0 ? text : text[..^hold];
        _pending = hold == 0 ? "" : text[^hold..];
        return StopResult.Continue;
    }

    /// <summary>At the end of generation: the held-back text, which turned out not to start a stop sequence (empty after a stop).</summary>
    public string Flush()
    {
        var rest = _pending;
        _pending = "";
        return rest;
    }
}
