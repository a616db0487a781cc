using InferenceServer.Configuration;
using InferenceServer.Configuration.HuggingFace;
using InferenceServer.Generation;
using InferenceServer.Generation.Tokenization;
using InferenceServer.Inference;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Generation.Tokenization;

/// <summary>How the model configuration's eos/bos settings combine with a tokenizer.json's post-processor.</summary>
public sealed class HuggingFaceTokenizerSpecialTokenTests
{
    private static ITokenizer Create(string family, TokenizerSpec spec)
    {
        var path = TokenizerTestFiles.Path_(family);
        spec.Kind = TokenizerSpec.TokenizerJson;
        spec.File = Path.GetFileName(path);
        return TokenizerFactory.Create(spec, Path.GetDirectoryName(path)!);
    }

    private static List<int> Encode(ITokenizer tokenizer, string text, bool addSpecialTokens)
    {
        var ids = new List<int>();
        tokenizer.Encode(text, ids, addSpecialTokens);
        return ids;
    }

    [Theory]
    [InlineData("qwen3", null, 151645)]
    [InlineData("llama3_1", 128000, 128009)]
    [InlineData("llama2", 1, 2)]
    public void A_hub_directory_encodes_as_transformers_tokenizer_of_the_text(string family, int? bos, int eos)
    {
        var directory = Paths.NpmTokenizer(family);
        var spec = ConfiguredModel.None.WithFormatLayers(HuggingFaceFiles.Read(directory, directory)).Values.Generation!.Tokenizer!;
        var tokenizer = TokenizerFactory.Create(spec, directory);
        Assert.Equal(bos, tokenizer.BosTokenId);
        Assert.Equal(eos, tokenizer.EosTokenId);
        var reference = ReferenceTokenizer.For(family);
        foreach (var text in TokenizerCorpus.Texts)
        {
            // These three tokenizer_config.json files agree with their templates, so tokenizer(text) is the post-processed encoding: one BOS at most.
            Assert.Equal(reference.Encode(text, addSpecialTokens: true), Encode(tokenizer, text, addSpecialTokens: true));
            Assert.Equal(reference.Encode(text, addSpecialTokens: false), Encode(tokenizer, text, addSpecialTokens: false));
        }
    }

    [Fact]
    public void Add_bos_false_leaves_out_the_templates_bos()
    {
        var tokenizer = Create("llama3_1", new TokenizerSpec { BosToken = "<|begin_of_text|>", AddBos = false });
        Assert.Null(tokenizer.BosTokenId);
        Assert.Equal(ReferenceTokenizer.For("llama3_1").Encode("hello there", false), Encode(tokenizer, "hello there", true));
        // BERT keeps [SEP] when [CLS] is not added.
        var bert = Create("bert", new TokenizerSpec { BosToken = "[CLS]", AddBos = false });
        Assert.Equal([7592, 102], Encode(bert, "hello", true));
    }

    [Fact]
    public void A_bos_the_template_does_not_add_is_put_first_once()
    {
        var qwen = Create("qwen3", new TokenizerSpec { BosToken = "<|endoftext|>", AddBos = true });
        Assert.Equal(151643, qwen.BosTokenId);
        Assert.Equal([151643, 14990], Encode(qwen, "hello", true));
        Assert.Equal([14990], Encode(qwen, "hello", false));
        // Llama's template already starts with it: no second one.
        var llama = Create("llama3_1", new TokenizerSpec { BosToken = "<|begin_of_text|>", AddBos = true });
        Assert.Equal(ReferenceTokenizer.For("llama3_1").Encode("hello", true), Encode(llama, "hello", true));
        // Without a bos_token the template's leading special token is the BOS.
        Assert.Equal(128000, Create("llama3_1", new TokenizerSpec()).BosTokenId);
        Assert.Null(Create("qwen3", new TokenizerSpec()).BosTokenId);
    }

    [Fact]
    public void Special_tokens_are_found_by_content_and_bad_names_fail_at_load()
    {
        var tokenizer = (HuggingFaceTokenizer)Create("qwen3", new TokenizerSpec { EosToken = "<|im_end|>" });
        Assert.Equal(151645, tokenizer.EosTokenId);
        Assert.Equal(151644, tokenizer.FindTokenId("<|im_start|>"));
        Assert.True(tokenizer.IsSpecial(151644));
        Assert.Null(tokenizer.FindTokenId("<|not a token|>"));
        var e = Assert.Throws<ArgumentException>(() => Create("qwen3", new TokenizerSpec { EosToken = "<|nope|>" }));
        Assert.Contains("<|nope|>", e.Message);
    }

    [Fact]
    public void Unknown_ids_are_invalid_arguments()
    {
        var tokenizer = Create("llama2", new TokenizerSpec());
        var e = Assert.Throws<InferenceException>(() => tokenizer.Decode([1, tokenizer.VocabularySize]));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Throws<InferenceException>(() => tokenizer.TokenString(-1));
        Assert.Throws<InferenceException>(() => tokenizer.CreateDecoder().Append(tokenizer.VocabularySize));
        Assert.Equal("▁the", tokenizer.TokenString(tokenizer.FindTokenIdOrThrow("▁the")));
    }

    [Fact]
    public void One_tokenizer_serves_many_threads()
    {
        var tokenizer = Create("llama3_1", new TokenizerSpec());
        var reference = ReferenceTokenizer.For("llama3_1");
        var expected = TokenizerCorpus.Texts.Select(t => reference.Encode(t, false)).ToArray();
        Parallel.For(0, 200, i =>
        {
            var index = i % TokenizerCorpus.Texts.Length;
            Assert.Equal(expected[index], Encode(tokenizer, TokenizerCorpus.Texts[index], false));
        });
    }
}

internal static class TokenizerTestExtensions
{
    public static int FindTokenIdOrThrow(this ITokenizer tokenizer, string token) =>
        ((HuggingFaceTokenizer)tokenizer).FindTokenId(token) ?? throw new InvalidOperationException(token);
}
