using System.Globalization;
using InferenceServer.Inference;

namespace InferenceServer.Generation;

/// <summary>How the next token is chosen from the logits (OpenAI semantics and ranges).</summary>
public sealed record SamplingParameters
{
    /// <summary>Softmax temperature in [0, 2]; 0 picks the most likely token (greedy).</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Sample only among the <see cref="TopK"/> most likely tokens; 0 turns it off.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: the smallest set of most likely tokens whose probability reaches <see cref="TopP"/>, in (0, 1]; 1 turns it off.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seed for reproducible sampling; null draws one at random.</summary>
    public ulong? Seed { get; init; }

    /// <summary>Always picks the most likely token.</summary>
    public static SamplingParameters Greedy { get; } = new() { Temperature = 0f };

    /// <summary>Whether sampling reduces to taking the argmax.</summary>
    public bool IsGreedy => Temperature == 0f || TopK == 1;

    /// <summary>Throws InvalidArgument for values outside their ranges.</summary>
    /// <exception cref="InferenceException">InvalidArgument naming the offending parameter.</exception>
    public void Validate()
    {
        // Negated comparisons so NaN fails too.
        if (!(Temperature >= 0f && Temperature <= 2f))
        {
            throw InferenceException.InvalidArgument($"temperature must be between 0 and 2, got {Format(Temperature)}");
        }
        if (!(TopP > 0f && TopP <= 1f))
        {
            throw InferenceException.InvalidArgument($"top_p must be greater than 0 and at most 1, got {Format(TopP)}");
        }
        if (TopK < 0)
        {
            throw InferenceException.InvalidArgument($"top_k must be 0 (off) or positive, got {TopK}");
        }
    }

    private static string Format(float value) => value.ToString(CultureInfo.InvariantCulture);
}
