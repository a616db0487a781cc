using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Generation.Chat;
using InferenceServer.Observability;

namespace InferenceServer.Tests.Core.Generation;

/// <summary>
/// A sequence ends with finish_reason "stop" on the tokenizer's end-of-sequence id or on any of the model's
/// <c>stop_token_ids</c>, the ending token not being part of the text; <c>ignore_eos</c> generates through all of them.
/// </summary>
public sealed class GeneratingSequenceStopTokenTests
{
    private const string Vocabulary = "abcdef";
    private const int Width = 8;

    /// <summary>Characters "abcdef" under logits of width 8, EOS 'f' (5) unless <paramref name="eos"/> says otherwise.</summary>
    private static GenerationModel Model(IReadOnlyList<int> stopTokenIds, int? eos = 5) => new(
        new GenerationSettings
        {
            Tokenizer = new TokenizerSpec { Kind = TokenizerSpec.Characters, Vocabulary = Vocabulary },
            ContextWindow = 4,
            InputName = "ids",
            LogitsName = "logits",
            LogitsWidth = Width,
            MaxRunningSequences = 1,
            MaxWaitingSequences = 1,
            StopTokenIds = stopTokenIds,
        },
        new CharacterTokenizer(Vocabulary, eos),
        FormatChatTemplate.Default);

    /// <summary>Feeds the greedy choices <paramref name="tokens"/> until the sequence finishes; returns its text, finish reason and tokens.</summary>
    private static (string Text, FinishReason Finish, int Tokens) Run(GenerationModel model, int[] tokens, bool ignoreEos = false, int maxTokens = 10)
    {
        var request = new GenerationRequest { PromptTokenIds = [0], IgnoreEos = ignoreEos };
        var sequence = new GeneratingSequence([0], request, maxTokens, model, new ServerMetrics().ForGeneration("m", "1"), null, new Lease());
        var logits = new float[Width];
        var scratch = new float[Width];
        var finished = false;
        foreach (var token in tokens)
        {
            Array.Clear(logits);
            logits[token] = 10f;
            // As the batcher does: the ids past the vocabulary are never sampled.
            finished = sequence.Accept(logits.AsSpan(0, Vocabulary.Length), scratch, 0);
            if (finished)
            {
                break;
            }
        }
        Assert.True(finished, "the sequence did not finish");
        var text = "";
        var finish = FinishReason.None;
        while (sequence.Chunks.TryRead(out var chunk))
        {
            text += chunk.Text;
            finish = chunk.FinishReason;
        }
        Assert.Equal(sequence.Finish, finish);
        return (text, finish, sequence.CompletionTokens);
    }

    [Fact]
    public void A_stop_token_id_ends_the_sequence_with_stop_and_is_not_in_the_text()
    {
        var model = Model([2, 4]);
        Assert.Equal([5, 2, 4], model.EndTokenIds.ToArray());
        Assert.Equal(("ab", FinishReason.Stop, 3), Run(model, [0, 1, 2, 3]));
        Assert.Equal(("bd", FinishReason.Stop, 3), Run(model, [1, 3, 4, 0]));
    }

    [Fact]
    public void The_end_of_sequence_id_still_ends_it()
    {
        Assert.Equal(("ad", FinishReason.Stop, 3), Run(Model([2]), [0, 3, 5, 1]));
        // Listed again among the stop ids, it is one end token.
        Assert.Equal([5, 2], Model([5, 2]).EndTokenIds.ToArray());
    }

    [Fact]
    public void Ignore_eos_generates_through_stop_token_ids_and_the_eos_up_to_max_tokens()
    {
        Assert.Equal(("acfe", FinishReason.Length, 4), Run(Model([2]), [0, 2, 5, 4], ignoreEos: true, maxTokens: 4));
    }

    [Fact]
    public void A_model_without_eos_or_stop_ids_ends_only_at_max_tokens()
    {
        var model = Model([], eos: null);
        Assert.True(model.EndTokenIds.IsEmpty);
        Assert.Equal(("cfc", FinishReason.Length, 3), Run(model, [2, 5, 2], maxTokens: 3));
    }

    private sealed class Lease : IDisposable
    {
        public void Dispose()
        {
        }
    }
}
