using System.Text.Json.Nodes;

namespace InferenceServer.Tests.Core.Generation.Tokenization;

/// <summary>
/// The Rust tokenizers library through Tokenizers.DotNet, whose API is only Encode(text) and Decode(ids): Encode adds the
/// special tokens and Decode skips special tokens (both checked by a test). The other settings come from modified copies of
/// the file: without its post-processor (add_special_tokens=false) and with every added token's "special" flag cleared
/// (decode keeping special tokens).
/// </summary>
internal sealed class ReferenceTokenizer
{
    private readonly Tokenizers.DotNet.Tokenizer _withSpecial;
    private readonly Tokenizers.DotNet.Tokenizer _withoutSpecial;
    private readonly Tokenizers.DotNet.Tokenizer _nothingSpecial;
    private readonly Lock _gate = new();

    public ReferenceTokenizer(string path)
    {
        _withSpecial = new Tokenizers.DotNet.Tokenizer(path);
        var json = JsonNode.Parse(File.ReadAllText(path))!;
        json["post_processor"] = null;
        _withoutSpecial = new Tokenizers.DotNet.Tokenizer(TokenizerTestFiles.Write("ref-nopost", json.ToJsonString()));
        foreach (var token in json["added_tokens"]?.AsArray() ?? [])
        {
            token!["special"] = false;
        }
        _nothingSpecial = new Tokenizers.DotNet.Tokenizer(TokenizerTestFiles.Write("ref-nospecial", json.ToJsonString()));
    }

    public int[] Encode(string text, bool addSpecialTokens)
    {
        lock (_gate)
        {
            return (addSpecialTokens ? _withSpecial : _withoutSpecial).Encode(text).Select(id => (int)id).ToArray();
        }
    }

    public string Decode(int[] ids, bool skipSpecialTokens)
    {
        lock (_gate)
        {
            return (skipSpecialTokens ? _withSpecial : _nothingSpecial).Decode(ids.Select(id => (uint)id).ToArray());
        }
    }

    private static readonly Dictionary<string, ReferenceTokenizer> Cache = [];
    private static readonly Lock CacheGate = new();

    public static ReferenceTokenizer For(string family)
    {
        lock (CacheGate)
        {
            if (!Cache.TryGetValue(family, out var reference))
            {
                Cache[family] = reference = new ReferenceTokenizer(TokenizerTestFiles.Path_(family));
            }
            return reference;
        }
    }
}

/// <summary>Hard strings every tokenizer is compared on.</summary>
internal static class TokenizerCorpus
{
    public static readonly string[] Texts =
    [
        "",
        "hello",
        "Hello world",
        " leading space",
        "   three leading spaces",
        "trailing spaces   ",
        "tabs\tand\t\ttabs",
        "lines\n\n\nafter\r\nlines\n",
        "  \n \t  mixed   \n  whitespace  ",
        "1234567",
        "3.14159 and 2,718 and 1e-9",
        "東京は日本の首都です。北京也是。",
        "안녕하세요, 세계! 한국어 텍스트",
        "مرحبا بالعالم، هذا نص عربي",
        "Привет, мир! Ёлка.",
        "emoji 👩🏽‍💻 family 👨‍👩‍👧‍👦 flags 🇯🇵🇫🇷 thumbs 👍🏿 done",
        "😀abc👍great🎉!",
        "café vs cafe\u0301 and naïve résumé",
        "e\u0301\u0301 stacked marks a\u0308\u0304",
        "I'm sure you'll see they've DON'T WON'T we'd it's",
        "def f(x):\n    return x**2 + 3*x - 1  # comment\n\nif __name__ == '__main__':\n\tprint(f(2))",
        "for (int i = 0; i < n; i++) { sum += a[i] >> 2; } // done",
        "See https://example.com/path?query=1&x=y#frag or mailto:someone@example.org.",
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "<s>[INST] hello [/INST]</s>",
        "[CLS] text [SEP] more [MASK] end",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
        "text<s>glued</s>text <unk> <mask>word  <mask> wordy wordyx normal   next",
        "Mixed: Ünïcödé, ǅemo, ﬁne ligature, ①②③, ¼ and Ⅻ, full-width ＡＢＣ１２３",
        "zero\u200Bwidth\u200Djoiner\uFEFFbom and soft\u00ADhyphen, nbsp\u00A0here",
        "control\u0001chars\u0007and\u001Fmore\u007F",
        "math 𝐀𝐁𝐂 𝟏𝟐𝟑 and old 𐌰𐌱 and CJK ext 𠀀𠀁",
        "low lower lowest newer newest wider widest the then there zzz!",
        "a-b-c well-known co-operate aaaeeiioo xylophone box",
        "İstanbul ΣΊΣΥΦΟΣ straße",
        "<|im_start|>   spaced <|im_end|>  x<|endoftext|>y <|endoftext|> z <tool_call>＜tool_call＞ 123456 ①②",
    ];

    /// <summary>A few KB of mixed text.</summary>
    public static string Long()
    {
        var builder = new System.Text.StringBuilder();
        for (var i = 0; builder.Length < 6000; i++)
        {
            builder.Append(Texts[(i * 7) % Texts.Length]).Append(i % 3 == 0 ? "\n" : " ");
        }
        return builder.ToString();
    }

    public static IEnumerable<string> All() => Texts.Append(Long());
}
