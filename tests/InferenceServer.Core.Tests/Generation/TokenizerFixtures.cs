using System.IO.Compression;
using System.Reflection;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Tests.Core.Generation;

/// <summary>A model directory under the temp folder, deleted on dispose.</summary>
public sealed class TempModelDirectory : IDisposable
{
    public TempModelDirectory()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "gen-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Write(string name, string text)
    {
        File.WriteAllText(System.IO.Path.Combine(Path, name), text, new UTF8Encoding(false));
        return name;
    }

    public string Write(string name, byte[] bytes)
    {
        File.WriteAllBytes(System.IO.Path.Combine(Path, name), bytes);
        return name;
    }

    public void Dispose() => Directory.Delete(Path, recursive: true);
}

/// <summary>Small but real tokenizer files: a GPT-2 style byte-level BPE, a SentencePiece model, and OpenAI's cl100k_base ranks.</summary>
public static class TokenizerFixtures
{
    /// <summary>Merges of the tiny BPE; the merged tokens get ids 256.. in this order, &lt;|endoftext|&gt; comes after them.</summary>
    public static readonly string[] Merges = ["Ġ t", "h e", "Ġt he", "Ã ©", "l l", "ll o"];

    public const int EndOfText = 262;

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 and up.</summary>
    public static char[] ByteToChar()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    /// <summary>Byte b is token b; each merge adds one token; then &lt;|endoftext|&gt;.</summary>
    public static Dictionary<string, int> BpeVocabulary()
    {
        var map = ByteToChar();
        var vocabulary = new Dictionary<string, int>();
        for (var b = 0; b < 256; b++)
        {
            vocabulary[map[b].ToString()] = b;
        }
        foreach (var merge in Merges)
        {
            vocabulary[merge.Replace(" ", "")] = vocabulary.Count;
        }
        vocabulary["<|endoftext|>"] = vocabulary.Count;
        return vocabulary;
    }

    public static void WriteGpt2Files(TempModelDirectory directory)
    {
        directory.Write("vocab.json", JsonSerializer.Serialize(BpeVocabulary()));
        directory.Write("merges.txt", "#version: 0.2\n" + string.Join("\n", Merges) + "\n");
    }

    /// <summary>A tokenizer.json with the same model; <paramref name="preTokenizer"/> and <paramref name="normalizer"/> are raw JSON.</summary>
    public static string TokenizerJson(bool mergesAsPairs = false, string preTokenizer = """{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}""",
        string normalizer = "null", string modelType = "BPE")
    {
        var merges = mergesAsPairs ? (object)Merges.Select(m => m.Split(' ')).ToArray() : Merges;
        var json = new Dictionary<string, object?>
        {
            ["version"] = "1.0",
            ["added_tokens"] = new object[]
            {
                new { id = EndOfText, content = "<|endoftext|>", special = true },
                new { id = EndOfText + 1, content = "<|im_end|>", special = true },
            },
            ["normalizer"] = JsonDocument.Parse(normalizer).RootElement,
            ["pre_tokenizer"] = JsonDocument.Parse(preTokenizer).RootElement,
            ["post_processor"] = null,
            ["decoder"] = new { type = "ByteLevel", add_prefix_space = true, trim_offsets = true, use_regex = true },
            ["model"] = new Dictionary<string, object?>
            {
                ["type"] = modelType,
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["vocab"] = BpeVocabulary(),
                ["merges"] = merges,
            },
        };
        return JsonSerializer.Serialize(json);
    }

    /// <summary>Pieces of the SentencePiece BPE model after &lt;unk&gt;, &lt;s&gt;, &lt;/s&gt; and the 256 byte pieces (so "▁" is id 259).</summary>
    public static readonly string[] SentencePieces =
        ["▁", "h", "e", "l", "o", "w", "r", "d", "a", "é", "▁h", "he", "ll", "llo", "▁he", "▁hello", "▁w", "or", "▁wor", "▁world"];

    public static int PieceId(string piece) => 259 + Array.IndexOf(SentencePieces, piece);

    /// <summary>A Llama-style SentencePiece BPE model with byte fallback, written as the sentencepiece_model.proto bytes.</summary>
    public static byte[] SentencePieceModel()
    {
        var model = new MemoryStream();
        void Piece(string text, float score, int type)
        {
            var piece = new MemoryStream();
            Bytes(piece, 1, Encoding.UTF8.GetBytes(text));
            Float(piece, 2, score);
            Int(piece, 3, type);
            Bytes(model, 1, piece.ToArray());
        }
        const int normal = 1, unknown = 2, control = 3, @byte = 6;
        Piece("<unk>", 0, unknown);
        Piece("<s>", 0, control);
        Piece("</s>", 0, control);
        for (var b = 0; b < 256; b++)
        {
            Piece($"<0x{b:X2}>", 0, @byte);
        }
        var score = -1f;
        foreach (var piece in SentencePieces)
        {
            Piece(piece, score--, normal);
        }
        var trainer = new MemoryStream();
        Int(trainer, 3, 2); // model_type BPE
        Int(trainer, 35, 1); // byte_fallback
        Bytes(model, 2, trainer.ToArray());
        var normalizer = new MemoryStream();
        Bytes(normalizer, 1, Encoding.UTF8.GetBytes("identity"));
        Int(normalizer, 3, 1); // add_dummy_prefix
        Int(normalizer, 4, 1); // remove_extra_whitespaces
        Int(normalizer, 5, 1); // escape_whitespaces
        Bytes(model, 3, normalizer.ToArray());
        return model.ToArray();
    }

    /// <summary>cl100k_base.tiktoken as OpenAI publishes it, from the Microsoft.ML.Tokenizers.Data.Cl100kBase package.</summary>
    public static byte[] Cl100kBaseRanks()
    {
        var assembly = Assembly.Load("Microsoft.ML.Tokenizers.Data.Cl100kBase");
        using var resource = assembly.GetManifestResourceStream("cl100k_base.tiktoken.deflate")!;
        using var inflate = new DeflateStream(resource, CompressionMode.Decompress);
        using var reader = new StreamReader(inflate, Encoding.ASCII);
        var text = reader.ReadToEnd();
        // The package prefixes a "Capacity: N" line that published .tiktoken files do not have.
        if (text.StartsWith("Capacity:", StringComparison.Ordinal))
        {
            text = text[(text.IndexOf('\n') + 1)..];
        }
        return Encoding.ASCII.GetBytes(text);
    }

    private static void Varint(Stream stream, ulong value)
    {
        while (value >= 0x80)
        {
            stream.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        stream.WriteByte((byte)value);
    }

    private static void Tag(Stream stream, int field, int wireType) => Varint(stream, (ulong)((field << 3) | wireType));

    private static void Bytes(Stream stream, int field, byte[] bytes)
    {
        Tag(stream, field, 2);
        Varint(stream, (ulong)bytes.Length);
        stream.Write(bytes);
    }

    private static void Int(Stream stream, int field, long value)
    {
        Tag(stream, field, 0);
        Varint(stream, (ulong)value);
    }

    private static void Float(Stream stream, int field, float value)
    {
        Tag(stream, field, 5);
        stream.Write(BitConverter.GetBytes(value));
    }
}
