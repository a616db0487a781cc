using System.Text.Json;
using InferenceServer.Configuration;
using InferenceServer.Configuration.HuggingFace;
using InferenceServer.Generation;
using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// The tokenizer files the writer puts beside a decoder: a byte-level BPE tokenizer.json that the server's tokenizer
/// reads back exactly, and tokenizer_config.json with the special tokens, read through the server's own reader.
/// </summary>
public sealed class DecoderTokenizerFilesTests : IDisposable
{
    private static readonly DecoderOptions Options = new() { Layers = 1, DModel = 32, Heads = 4, KvHeads = 2, Vocab = 512, MaxPositions = 96 };

    private readonly string _dir = Directory.CreateTempSubdirectory("decoder-tokenizer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Writes <paramref name="options"/> into model/1/ and builds the tokenizer the server would from what its reader derives.</summary>
    private (ITokenizer Tokenizer, TokenizerSpec Spec) WriteAndLoad(DecoderOptions options)
    {
        string model = Path.Combine(_dir, "model");
        string version = Path.Combine(model, "1");
        DecoderModelWriter.Write(options, version);
        var spec = ConfiguredModel.None.WithFormatLayers(HuggingFaceFiles.Read(version, model)).Values.Generation!.Tokenizer!;
        return (TokenizerFactory.Create(spec, model), spec);
    }

    [Theory]
    [InlineData("The server answers requests over HTTP and gRPC.")]
    [InlineData("héllo wörld, ¿qué tal? 你好 🙂")]
    [InlineData("  two  spaces,\ttabs\nand new lines\r\n\n")]
    [InlineData("numbers 2048 4096 and 3.14159; symbols <>&\"'\\ {}")]
    [InlineData("Zqxj vbkw: letters the training text hardly has")]
    public void Text_encodes_and_decodes_back_exactly(string text)
    {
        var (tokenizer, _) = WriteAndLoad(Options);
        var ids = new List<int>();
        tokenizer.Encode(text, ids);
        Assert.NotEmpty(ids);
        Assert.All(ids, id => Assert.InRange(id, 3, Options.Vocab - 1));
        Assert.Equal(text, tokenizer.Decode(ids.ToArray()));
    }

    [Fact]
    public void The_special_tokens_are_at_the_models_ids_and_the_vocabulary_fills_the_logits()
    {
        var (tokenizer, spec) = WriteAndLoad(Options);
        Assert.Equal(Options.Vocab, tokenizer.VocabularySize);
        Assert.Equal(Options.BosTokenId, tokenizer.BosTokenId);
        Assert.Equal(Options.EosTokenId, tokenizer.EosTokenId);
        Assert.Equal("<s>", spec.BosToken);
        Assert.True(spec.AddBos);
        Assert.Equal("</s>", spec.EosToken);
        var ml = Assert.IsType<InferenceServer.Generation.Tokenization.HuggingFaceTokenizer>(tokenizer);
        Assert.Equal(Options.PadTokenId, ml.FindTokenId("<pad>"));

        // A special token spelled in a prompt is that token.
        var ids = new List<int>();
        tokenizer.Encode("</s>", ids);
        Assert.Equal([Options.EosTokenId], ids);
    }

    [Fact]
    public void Merges_make_common_words_shorter_than_their_bytes()
    {
        var (tokenizer, _) = WriteAndLoad(Options);
        const string text = "the server keeps the keys and values of every layer";
        var ids = new List<int>();
        tokenizer.Encode(text, ids);
        Assert.True(ids.Count < text.Length / 2, $"{ids.Count} tokens for {text.Length} bytes: the merges are not applied");
    }

    [Fact]
    public void Special_ids_anywhere_are_kept_and_a_shared_id_shares_its_token()
    {
        var options = Options with { Vocab = 300, BosTokenId = 299, EosTokenId = 298, PadTokenId = 298 };
        var vocabulary = ByteLevelBpeVocabulary.Create(options);
        Assert.Equal(300, vocabulary.Tokens.Count);
        Assert.Equal("<s>", vocabulary.Tokens[299]);
        Assert.Equal("</s>", vocabulary.Tokens[298]);
        Assert.Equal(300, vocabulary.Tokens.Distinct().Count());
        Assert.All(ByteLevelBpeVocabulary.ByteCharacters, c => Assert.Contains(c.ToString(), vocabulary.Tokens));
        var known = new HashSet<string>(vocabulary.Tokens);
        Assert.All(vocabulary.Merges, merge =>
        {
            var parts = merge.Split(' ');
            Assert.Equal(2, parts.Length);
            Assert.Contains(parts[0], known);
            Assert.Contains(parts[1], known);
            Assert.Contains(parts[0] + parts[1], known);
        });

        using var config = JsonDocument.Parse(HuggingFaceTokenizerFiles.TokenizerConfig(options));
        Assert.Equal("</s>", config.RootElement.GetProperty("pad_token").GetString());
        Assert.Equal(96, config.RootElement.GetProperty("model_max_length").GetInt32());
        var (tokenizer, _) = WriteAndLoad(options);
        Assert.Equal(299, tokenizer.BosTokenId);
        Assert.Equal(298, tokenizer.EosTokenId);
    }

    [Fact]
    public void A_large_vocabulary_is_filled_past_what_the_training_text_teaches()
    {
        var vocabulary = ByteLevelBpeVocabulary.Create(Options with { Vocab = 8192 });
        Assert.Equal(8192, vocabulary.Tokens.Count);
        Assert.Equal(8192, vocabulary.Tokens.Distinct().Count());
        Assert.True(vocabulary.Merges.Count >= 8192 - 256 - 3);
    }

    [Fact]
    public void A_vocabulary_without_room_for_the_byte_tokenizer_is_refused_clearly()
    {
        var tooSmall = Options with { Vocab = 258 };
        var e = Assert.Throws<ArgumentException>(() => DecoderModelWriter.Write(tooSmall, _dir));
        Assert.Contains("needs at least 259 ids", e.Message);
        Assert.Contains("--no-tokenizer", e.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_dir));

        var stderr = new StringWriter();
        Assert.Equal(2, DecoderCommand.Run(["--out", Path.Combine(_dir, "cli"), "--vocab", "258"], TextWriter.Null, stderr));
        Assert.Contains("needs at least 259 ids", stderr.ToString());

        // Without tokenizer files any vocabulary goes, and stale tokenizer files are removed.
        DecoderModelWriter.Write(Options, _dir);
        Assert.True(File.Exists(Path.Combine(_dir, "tokenizer.json")));
        var written = DecoderModelWriter.Write(tooSmall with { Vocab = 64, Tokenizer = false }, _dir);
        Assert.Equal(3, written.Count);
        Assert.False(File.Exists(Path.Combine(_dir, "tokenizer.json")));
        Assert.False(File.Exists(Path.Combine(_dir, "tokenizer_config.json")));
    }

    [Fact]
    public void Tokenizer_files_are_deterministic()
    {
        Assert.Equal(HuggingFaceTokenizerFiles.Tokenizer(Options), HuggingFaceTokenizerFiles.Tokenizer(Options with { Seed = 99 }));
        Assert.Equal(HuggingFaceTokenizerFiles.TokenizerConfig(Options), HuggingFaceTokenizerFiles.TokenizerConfig(Options));
        using var document = JsonDocument.Parse(HuggingFaceTokenizerFiles.Tokenizer(Options));
        var root = document.RootElement;
        Assert.Equal("BPE", root.GetProperty("model").GetProperty("type").GetString());
        Assert.Equal("ByteLevel", root.GetProperty("pre_tokenizer").GetProperty("type").GetString());
        Assert.Equal("ByteLevel", root.GetProperty("decoder").GetProperty("type").GetString());
        Assert.Equal(Options.Vocab, root.GetProperty("model").GetProperty("vocab").EnumerateObject().Count());
        Assert.Equal(
            [(0, "<pad>"), (1, "<s>"), (2, "</s>")],
            root.GetProperty("added_tokens").EnumerateArray().Select(t => (t.GetProperty("id").GetInt32(), t.GetProperty("content").GetString())));
    }
}
