using System.Text;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Inference;
using Microsoft.ML.Tokenizers;

namespace InferenceServer.Tests.Core.Generation;

internal static class Streaming
{
    /// <summary>Decodes <paramref name="ids"/> one token at a time; returns every Append result and the Flush result last.</summary>
    public static List<string> Pieces(ITokenizer tokenizer, IReadOnlyList<int> ids, int[]? context = null)
    {
        var decoder = context is null ? tokenizer.CreateDecoder() : tokenizer.CreateDecoder(context);
        var pieces = ids.Select(decoder.Append).ToList();
        pieces.Add(decoder.Flush());
        return pieces;
    }

    public static List<int> Encode(ITokenizer tokenizer, string text)
    {
        var ids = new List<int>();
        tokenizer.Encode(text, ids);
        return ids;
    }
}

public sealed class BpeTokenizerTests : IDisposable
{
    private readonly TempModelDirectory _directory = new();

    public BpeTokenizerTests() => TokenizerFixtures.WriteGpt2Files(_directory);

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void Gpt2_files_encode_with_byte_level_merges()
    {
        var tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe" }, _directory.Path);
        // he+llo, Ġthe, Ġ c a f, é (merged bytes), Ġ, the three bytes of 你, <|endoftext|> as one special token.
        Assert.Equal([257, 261, 258, 32, 99, 97, 102, 259, 32, 228, 189, 160, 32, TokenizerFixtures.EndOfText],
            Streaming.Encode(tokenizer, "hello the café 你 <|endoftext|>"));
        Assert.Equal(263, tokenizer.VocabularySize);
        Assert.Equal(TokenizerFixtures.EndOfText, tokenizer.EosTokenId);
        Assert.Equal("hello the café 你", tokenizer.Decode([257, 261, 258, 32, 99, 97, 102, 259, 32, 228, 189, 160]));
    }

    [Fact]
    public void Streaming_holds_back_split_characters_and_adds_up_to_decode()
    {
        var tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe" }, _directory.Path);
        const string text = "héllo the 你好 🎉, the end ß";
        var ids = Streaming.Encode(tokenizer, text);
        var pieces = Streaming.Pieces(tokenizer, ids);
        Assert.Equal(text, tokenizer.Decode(ids.ToArray()));
        Assert.Equal(text, string.Concat(pieces));
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        // 你 is three byte tokens: the first two emit nothing.
        var first = ids.IndexOf(0xE4);
        Assert.Equal("", pieces[first]);
        Assert.Equal("", pieces[first + 1]);
        Assert.Equal("你", pieces[first + 2]);
    }

    [Fact]
    public void Ids_outside_the_vocabulary_are_client_errors()
    {
        var tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe" }, _directory.Path);
        var e = Assert.Throws<InferenceException>(() => tokenizer.Decode([1, 263]));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Contains("263", e.Message);
        Assert.Throws<InferenceException>(() => tokenizer.CreateDecoder().Append(-5));
    }

    [Fact]
    public void A_named_eos_must_exist()
    {
        var e = Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe", EosToken = "<|im_end|>" }, _directory.Path));
        Assert.Contains("<|im_end|>", e.Message);
        Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe", EosTokenId = 263 }, _directory.Path));
        Assert.Equal(5, TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe", EosTokenId = 5 }, _directory.Path).EosTokenId);
    }

    [Fact]
    public void File_paths_stay_inside_the_model_directory()
    {
        var outside = Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe", VocabFile = "../vocab.json" }, _directory.Path));
        Assert.Contains("outside the model directory", outside.Message);
        Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe", VocabFile = "/etc/passwd" }, _directory.Path));
        var missing = Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe", MergesFile = "sub/merges.txt" }, _directory.Path));
        Assert.Contains("'sub/merges.txt'", missing.Message);
        Assert.Contains("does not exist", missing.Message);
    }

    [Fact]
    public void Broken_files_and_unknown_kinds_fail_with_the_cause()
    {
        _directory.Write("bad.json", "{ not json");
        var bad = Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe", VocabFile = "bad.json" }, _directory.Path));
        Assert.Contains("bad.json", bad.Message);
        var kind = Assert.Throws<ArgumentException>(() => TokenizerFactory.Create(new TokenizerSpec { Kind = "wordpiece" }, _directory.Path));
        Assert.Contains("'wordpiece'", kind.Message);
    }
}

public sealed class TokenizerJsonTests : IDisposable
{
    private readonly TempModelDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    private ITokenizer Load(string json, string? eos = null)
    {
        _directory.Write("tokenizer.json", json);
        return TokenizerFactory.Create(new TokenizerSpec { Kind = "tokenizer_json", EosToken = eos }, _directory.Path);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_byte_level_bpe_tokenizer_json_encodes_like_the_gpt2_files(bool mergesAsPairs)
    {
        TokenizerFixtures.WriteGpt2Files(_directory);
        var files = TokenizerFactory.Create(new TokenizerSpec { Kind = "bpe" }, _directory.Path);
        var json = Load(TokenizerFixtures.TokenizerJson(mergesAsPairs));
        const string text = "hello the café, hello 你好 <|endoftext|>";
        Assert.Equal(Streaming.Encode(files, text), Streaming.Encode(json, text));
        Assert.Contains(258, Streaming.Encode(json, text)); // the merged "Ġthe"
        Assert.Equal(264, json.VocabularySize);
        Assert.Equal(TokenizerFixtures.EndOfText, json.EosTokenId);
    }

    [Fact]
    public void Added_tokens_are_single_ids_and_name_the_eos()
    {
        var tokenizer = Load(TokenizerFixtures.TokenizerJson(), eos: "<|im_end|>");
        Assert.Equal(263, tokenizer.EosTokenId);
        var ids = Streaming.Encode(tokenizer, "he<|im_end|>");
        Assert.Equal([257, 263], ids);
        // Streaming skips special tokens (as vLLM streams with skip_special_tokens); Decode keeps them.
        Assert.Equal("he", string.Concat(Streaming.Pieces(tokenizer, ids)));
        Assert.Equal("he<|im_end|>", tokenizer.Decode(ids.ToArray()));
    }

    [Fact]
    public void A_split_regex_before_byte_level_is_the_pre_tokenizer()
    {
        // Llama 3 / Qwen 2 shape: the regex lives in a Split step and ByteLevel only maps bytes.
        var pattern = System.Text.Json.JsonSerializer.Serialize(TokenizerFactory.Gpt2Pattern);
        var sequence = $$"""{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":{{pattern}}},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}""";
        var tokenizer = Load(TokenizerFixtures.TokenizerJson(preTokenizer: sequence, normalizer: """{"type":"NFC"}"""));
        Assert.Equal([257, 261, 258], Streaming.Encode(tokenizer, "hello the"));
        // NFC: "e" + combining acute becomes "é", which has a merged token.
        Assert.Equal([259], Streaming.Encode(tokenizer, "e\u0301"));

        // ByteLevel without its regex does not split at all; the text still round-trips.
        var noRegex = Load(TokenizerFixtures.TokenizerJson(preTokenizer: """{"type":"ByteLevel","add_prefix_space":false,"use_regex":false}"""));
        Assert.Equal("hello the", noRegex.Decode(Streaming.Encode(noRegex, "hello the").ToArray()));
    }

    [Theory]
    [InlineData("""{"modelType":"Hypothetical"}""", "model 'Hypothetical'")]
    [InlineData("""{"pre":{"type":"UnicodeScripts"}}""", "pre_tokenizer 'UnicodeScripts'")]
    [InlineData("""{"normalizer":{"type":"Nmt"}}""", "normalizer 'Nmt'")]
    [InlineData("""{"pre":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\p{Han}+"},"behavior":"Isolated"},{"type":"ByteLevel"}]}}""", "\\p{Han}+")]
    [InlineData("""{"pre":{"type":"Split","pattern":{"String":"x"},"behavior":"Sideways"}}""", "Sideways")]
    [InlineData("""{"normalizer":{"type":"Precompiled","precompiled_charsmap":"AAAA"}}""", "precompiled_charsmap")]
    public void Unsupported_features_are_named(string variant, string mentions)
    {
        using var options = System.Text.Json.JsonDocument.Parse(variant);
        var root = options.RootElement;
        var json = TokenizerFixtures.TokenizerJson(
            preTokenizer: root.TryGetProperty("pre", out var pre) ? pre.GetRawText() : """{"type":"ByteLevel"}""",
            normalizer: root.TryGetProperty("normalizer", out var normalizer) ? normalizer.GetRawText() : "null",
            modelType: root.TryGetProperty("modelType", out var type) ? type.GetString()! : "BPE");
        var e = Assert.Throws<ArgumentException>(() => Load(json));
        Assert.Contains(mentions, e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }
}

public sealed class SentencePieceTokenizerTests : IDisposable
{
    private readonly TempModelDirectory _directory = new();

    public SentencePieceTokenizerTests() => _directory.Write("tokenizer.model", TokenizerFixtures.SentencePieceModel());

    public void Dispose() => _directory.Dispose();

    private ITokenizer Load(bool? addBos = null) => TokenizerFactory.Create(new TokenizerSpec { Kind = "sentencepiece", AddBos = addBos }, _directory.Path);

    [Fact]
    public void A_sentencepiece_model_encodes_with_pieces_and_byte_fallback()
    {
        var tokenizer = Load();
        Assert.Equal(3 + 256 + TokenizerFixtures.SentencePieces.Length, tokenizer.VocabularySize);
        Assert.Equal(2, tokenizer.EosTokenId);
        Assert.Equal(1, tokenizer.BosTokenId);
        Assert.Null(Load(addBos: false).BosTokenId);
        // No BOS from Encode itself; "你" is not a piece, so it falls back to its three UTF-8 bytes (<0xE4> is id 3 + 0xE4).
        Assert.Equal([TokenizerFixtures.PieceId("▁hello"), TokenizerFixtures.PieceId("▁"), 3 + 0xE4, 3 + 0xBD, 3 + 0xA0],
            Streaming.Encode(tokenizer, "hello 你"));
        Assert.Equal("hello world 你é x", tokenizer.Decode(Streaming.Encode(tokenizer, "hello world 你é x").ToArray()));
    }

    [Fact]
    public void Streaming_adds_up_to_decode()
    {
        var tokenizer = Load();
        const string text = "hello world 你é x, hello 🎉";
        var ids = Streaming.Encode(tokenizer, text);
        var pieces = Streaming.Pieces(tokenizer, ids);
        Assert.Equal(tokenizer.Decode(ids.ToArray()), string.Concat(pieces));
        Assert.Equal(text, string.Concat(pieces));
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
    }

    [Fact]
    public void Context_keeps_the_leading_space_of_the_first_generated_token()
    {
        var tokenizer = Load();
        var prompt = Streaming.Encode(tokenizer, "hello");
        int[] generated = [TokenizerFixtures.PieceId("▁wor"), TokenizerFixtures.PieceId("l"), TokenizerFixtures.PieceId("d")];
        // On its own the first token starts the text, so SentencePiece drops its space; after the prompt it must keep it.
        Assert.Equal("world", string.Concat(Streaming.Pieces(tokenizer, generated)));
        Assert.Equal(" world", string.Concat(Streaming.Pieces(tokenizer, generated, prompt.ToArray())));
    }
}

public sealed class TiktokenFixture : IDisposable
{
    public TiktokenFixture()
    {
        Directory = new TempModelDirectory();
        Directory.Write("cl100k_base.tiktoken", TokenizerFixtures.Cl100kBaseRanks());
        Tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = "tiktoken", File = "cl100k_base.tiktoken", Encoding = "cl100k_base" }, Directory.Path);
    }

    public TempModelDirectory Directory { get; }

    public ITokenizer Tokenizer { get; }

    public void Dispose() => Directory.Dispose();
}

public sealed class TiktokenTokenizerTests(TiktokenFixture fixture) : IClassFixture<TiktokenFixture>
{
    [Fact]
    public void A_tiktoken_file_encodes_as_openai_cl100k_base()
    {
        var tokenizer = fixture.Tokenizer;
        Assert.Equal([15339, 1917], Streaming.Encode(tokenizer, "hello world"));
        Assert.Equal(100257, tokenizer.EosTokenId);
        Assert.Equal(100277, tokenizer.VocabularySize);
        // The package's own cl100k_base (data embedded) must agree on text with every kind of pre-token.
        var reference = TiktokenTokenizer.CreateForEncoding("cl100k_base");
        const string text = "Héllo wörld!  It's 2024-05-01: 你好, мир 🎉\n\n  done <|endoftext|>";
        Assert.Equal(reference.EncodeToIds(text), Streaming.Encode(tokenizer, text));
        Assert.Contains(100257, Streaming.Encode(tokenizer, text));
    }

    [Fact]
    public void Streaming_holds_back_emoji_bytes_and_adds_up_to_decode()
    {
        var tokenizer = fixture.Tokenizer;
        const string text = "Héllo wörld 你好 🎉🎊 done. Ünïcödé ✓";
        var ids = Streaming.Encode(tokenizer, text);
        var pieces = Streaming.Pieces(tokenizer, ids);
        Assert.Equal(text, tokenizer.Decode(ids.ToArray()));
        Assert.Equal(text, string.Concat(pieces));
        Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        // 🎉 takes more than one token in cl100k_base, so some Append must have waited.
        Assert.Contains("", pieces.SkipLast(1));
    }

    [Fact]
    public void Tiktoken_needs_a_known_encoding()
    {
        var missing = Assert.Throws<ArgumentException>(() =>
            TokenizerFactory.Create(new TokenizerSpec { Kind = "tiktoken", File = "cl100k_base.tiktoken" }, fixture.Directory.Path));
        Assert.Contains("encoding", missing.Message);
        var unknown = Assert.Throws<ArgumentException>(() =>
            TokenizerFactory.Create(new TokenizerSpec { Kind = "tiktoken", File = "cl100k_base.tiktoken", Encoding = "nonsense_base" }, fixture.Directory.Path));
        Assert.Contains("nonsense_base", unknown.Message);
    }
}

public sealed class StreamingPropertyTests(TiktokenFixture tiktoken) : IClassFixture<TiktokenFixture>, IDisposable
{
    private readonly TempModelDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    public static TheoryData<string> Kinds => ["bpe", "sentencepiece", "tiktoken"];

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Streaming_random_text_adds_up_to_decode(string kind)
    {
        ITokenizer tokenizer;
        if (kind == "tiktoken")
        {
            tokenizer = tiktoken.Tokenizer;
        }
        else if (kind == "bpe")
        {
            TokenizerFixtures.WriteGpt2Files(_directory);
            tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = kind }, _directory.Path);
        }
        else
        {
            _directory.Write("tokenizer.model", TokenizerFixtures.SentencePieceModel());
            tokenizer = TokenizerFactory.Create(new TokenizerSpec { Kind = kind }, _directory.Path);
        }
        var random = new Random(11);
        string[] alphabet = ["hello", " ", "the", "é", "你", "🎉", ",", "x", "ß", "\n", "wor", "ld", "Ж", " hello"];
        for (var round = 0; round < 100; round++)
        {
            var text = string.Concat(Enumerable.Range(0, random.Next(1, 40)).Select(_ => alphabet[random.Next(alphabet.Length)]));
            var ids = Streaming.Encode(tokenizer, text);
            var pieces = Streaming.Pieces(tokenizer, ids);
            Assert.Equal(tokenizer.Decode(ids.ToArray()), string.Concat(pieces));
            Assert.All(pieces, p => Assert.DoesNotContain('\uFFFD', p));
        }
    }
}
