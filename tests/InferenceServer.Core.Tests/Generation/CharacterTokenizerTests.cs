using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Core.Generation;

public sealed class CharacterTokenizerTests
{
    // tiny-shakespeare's vocabulary, as nanoGPT builds it.
    public const string Shakespeare = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    [Fact]
    public void Ids_are_positions_in_the_vocabulary()
    {
        var tokenizer = new CharacterTokenizer(Shakespeare);
        Assert.Equal(65, tokenizer.VocabularySize);
        var ids = new List<int> { 99 };
        tokenizer.Encode("First Citizen:\nhi!", ids);
        Assert.Equal(99, ids[0]);
        Assert.Equal(0, ids[15]);
        Assert.Equal(Shakespeare.IndexOf('F'), ids[1]);
        Assert.Equal(Shakespeare.IndexOf('!'), ids[^1]);
        Assert.Equal("First Citizen:\nhi!", tokenizer.Decode(ids.ToArray().AsSpan(1)));
        Assert.Null(tokenizer.EosTokenId);
        Assert.Null(tokenizer.BosTokenId);
    }

    [Theory]
    [InlineData("café", "'é' (U+00E9)")]
    [InlineData("smile 😀", "'😀' (U+1F600)")]
    [InlineData("tab\there", "U+0009")]
    public void Characters_outside_the_vocabulary_are_rejected_by_name(string prompt, string mentions)
    {
        var e = Assert.Throws<InferenceException>(() => new CharacterTokenizer(Shakespeare).Encode(prompt, []));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Contains(mentions, e.Message);
        Assert.Contains("not in the model's vocabulary", e.Message);
    }

    [Fact]
    public void A_vocabulary_with_a_repeated_character_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => new CharacterTokenizer("abca"));
        Assert.Contains("'a'", e.Message);
        Assert.Throws<ArgumentException>(() => new CharacterTokenizer(""));
        Assert.Throws<ArgumentException>(() => new CharacterTokenizer("ab", eosTokenId: 2));
    }

    [Fact]
    public void Streaming_decode_emits_each_character_and_matches_decode()
    {
        var tokenizer = new CharacterTokenizer(Shakespeare, eosTokenId: 0);
        var ids = new List<int>();
        tokenizer.Encode("To be, or not to be:\nthat is the question.", ids);
        var decoder = tokenizer.CreateDecoder();
        var pieces = ids.Select(decoder.Append).ToList();
        Assert.All(pieces, p => Assert.Equal(1, p.Length));
        Assert.Equal(tokenizer.Decode(ids.ToArray()), string.Concat(pieces) + decoder.Flush());
        Assert.Equal("To be, or not to be:\nthat is the question.", string.Concat(pieces));
        Assert.Equal(0, tokenizer.EosTokenId);
    }

    [Fact]
    public void Ids_outside_the_vocabulary_are_client_errors()
    {
        var tokenizer = new CharacterTokenizer(Shakespeare);
        Assert.Equal(InferenceErrorKind.InvalidArgument, Assert.Throws<InferenceException>(() => tokenizer.Decode([1, 65])).Kind);
        var e = Assert.Throws<InferenceException>(() => tokenizer.CreateDecoder().Append(-1));
        Assert.Contains("-1", e.Message);
    }

    [Fact]
    public void The_factory_builds_it_with_an_eos_character()
    {
        var tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = "characters", Vocabulary = Shakespeare, EosToken = "\n" }, ".");
        Assert.IsType<CharacterTokenizer>(tokenizer);
        Assert.Equal(0, tokenizer.EosTokenId);
        Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "characters", Vocabulary = Shakespeare, EosToken = "é" }, "."));
        Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "characters" }, "."));
    }
}
