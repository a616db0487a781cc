using System.Text;
using System.Text.Json.Nodes;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Generation.Tokenization;
using Xunit.Abstractions;

namespace InferenceServer.Tests.Core.Generation.Tokenization;

/// <summary>Every tokenizer.json of <see cref="TokenizerTestFiles"/> against the Rust library on the hard-string corpus.</summary>
public sealed class HuggingFaceTokenizerReferenceTests(ITestOutputHelper output)
{
    public static TheoryData<string> Families() => new(TokenizerTestFiles.Families);

    private static readonly Dictionary<string, HuggingFaceTokenizer> Loaded = [];

    // TOKENIZER_FUZZ=seed,samples runs the random mixtures longer (e.g. 5,5000).
    private static readonly int FuzzSeed = int.Parse(Environment.GetEnvironmentVariable("TOKENIZER_FUZZ")?.Split(',')[0] ?? "0");
    private static readonly int FuzzSamples = int.Parse(Environment.GetEnvironmentVariable("TOKENIZER_FUZZ")?.Split(',')[1] ?? "300");

    private static HuggingFaceTokenizer Load(string family)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(family, out var tokenizer))
            {
                var path = TokenizerTestFiles.Path_(family);
                var spec = new TokenizerSpec { Kind = TokenizerSpec.TokenizerJson, File = Path.GetFileName(path) };
                Loaded[family] = tokenizer = (HuggingFaceTokenizer)TokenizerFactory.Create(spec, Path.GetDirectoryName(path)!);
            }
            return tokenizer;
        }
    }

    [Fact]
    public void The_reference_encode_adds_special_tokens_and_its_decode_skips_them()
    {
        var reference = new Tokenizers.DotNet.Tokenizer(TokenizerTestFiles.Path_("llama3_1"));
        var ids = reference.Encode("hi");
        Assert.Equal(128000u, ids[0]);
        Assert.Equal("hi", reference.Decode(ids));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Ids_equal_the_reference_with_and_without_special_tokens(string family)
    {
        var tokenizer = Load(family);
        var reference = ReferenceTokenizer.For(family);
        var failures = new List<string>();
        foreach (var text in TokenizerCorpus.All())
        {
            foreach (var special in new[] { false, true })
            {
                var expected = reference.Encode(text, special);
                var actual = new List<int>();
                tokenizer.Encode(text, actual, special);
                if (!expected.SequenceEqual(actual))
                {
                    failures.Add($"{Show(text)} special={special}\n  expected {string.Join(",", expected)}\n  actual   {string.Join(",", actual)}");
                }
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join("\n", failures.Take(12)));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Random_mixtures_of_the_corpus_encode_and_decode_as_the_reference(string family)
    {
        var tokenizer = Load(family);
        var reference = ReferenceTokenizer.For(family);
        var random = new Random(family.Sum(c => c) + FuzzSeed);
        string[] fragments = [" ", "  ", "\n", "\t", "\r\n", "'s", "'LL", "a", "Z", "9", "42", "é", "e\u0301", "ß", "ﬁ", "東", "한", "ب", "😀", "👍🏿", "\u200D",
            "<s>", "</s>", "<|im_start|>", "<|endoftext|>", "[CLS]", "<unk>", "<mask>", "▁", "Ġ", "##", "-", "...", "\u00A0", "①", "Ａ", "_", "x"];
        var failures = new List<string>();
        for (var n = 0; n < FuzzSamples; n++)
        {
            var builder = new StringBuilder();
            var length = random.Next(1, 12);
            for (var i = 0; i < length; i++)
            {
                var kind = random.Next(4);
                if (kind == 3)
                {
                    // A short run of code points from assorted blocks: marks, scripts, format and control characters, compatibility forms, astral planes.
                    var (low, high) = Blocks[random.Next(Blocks.Length)];
                    for (var k = random.Next(1, 4); k > 0; k--)
                    {
                        var codePoint = random.Next(low, high + 1);
                        // U+061D (Unicode 14) is punctuation to .NET but unassigned in the Rust library's older tables.
                        builder.Append(char.ConvertFromUtf32(codePoint == 0x061D ? 0x061C : codePoint));
                    }
                }
                else if (kind == 0)
                {
                    var text = TokenizerCorpus.Texts[random.Next(TokenizerCorpus.Texts.Length)];
                    var start = random.Next(text.Length + 1);
                    var end = Math.Min(text.Length, start + random.Next(12));
                    // Never cut a surrogate pair: Rust strings cannot hold half a character.
                    if (start > 0 && start < text.Length && char.IsLowSurrogate(text[start])) start--;
                    if (end > 0 && end < text.Length && char.IsLowSurrogate(text[end])) end++;
                    builder.Append(text, start, end - start);
                }
                else
                {
                    builder.Append(fragments[random.Next(fragments.Length)]);
                }
            }
            var sample = builder.ToString();
            var expected = reference.Encode(sample, addSpecialTokens: true);
            var actual = new List<int>();
            tokenizer.Encode(sample, actual, addSpecialTokens: true);
            if (!expected.SequenceEqual(actual))
            {
                failures.Add($"{Show(sample)}\n  expected {string.Join(",", expected)}\n  actual   {string.Join(",", actual)}");
                continue;
            }
            foreach (var skip in new[] { true, false })
            {
                var expectedText = reference.Decode(expected, skip);
                var actualText = tokenizer.Decode(expected, skip);
                if (expectedText != actualText)
                {
                    failures.Add($"{Show(sample)} skip={skip}\n  expected {Show(expectedText)}\n  actual   {Show(actualText)}");
                }
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join("\n", failures.Take(8)));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Decode_equals_the_reference_skipping_and_keeping_special_tokens(string family)
    {
        var tokenizer = Load(family);
        var reference = ReferenceTokenizer.For(family);
        var failures = new List<string>();
        foreach (var text in TokenizerCorpus.All())
        {
            var ids = reference.Encode(text, addSpecialTokens: true);
            foreach (var skip in new[] { true, false })
            {
                var expected = reference.Decode(ids, skip);
                var actual = tokenizer.Decode(ids, skip);
                if (expected != actual)
                {
                    failures.Add($"{Show(text)} skip={skip}\n  expected {Show(expected)}\n  actual   {Show(actual)}");
                }
            }
        }
        // Single ids too: byte tokens, special tokens and the first/last token rules of the decoders.
        var random = new Random(7);
        for (var i = 0; i < 300; i++)
        {
            int[] ids = [random.Next(tokenizer.VocabularySize)];
            if (reference.Decode(ids, false) != tokenizer.Decode(ids, false))
            {
                failures.Add($"id {ids[0]}: expected {Show(reference.Decode(ids, false))} actual {Show(tokenizer.Decode(ids, false))}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join("\n", failures.Take(12)));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Token_strings_are_the_vocabulary_strings(string family)
    {
        var tokenizer = Load(family);
        var json = JsonNode.Parse(File.ReadAllText(TokenizerTestFiles.Path_(family)))!;
        var strings = new Dictionary<int, string>();
        var vocab = json["model"]!["vocab"]!;
        if (vocab is JsonArray pieces)
        {
            for (var i = 0; i < pieces.Count; i++)
            {
                strings[i] = (string)pieces[i]![0]!;
            }
        }
        else
        {
            foreach (var (token, id) in vocab.AsObject())
            {
                strings[(int)id!] = token;
            }
        }
        foreach (var token in json["added_tokens"]!.AsArray())
        {
            // Content the model already has keeps the model's id (Rust's rule); the file's id is then unused.
            var content = (string)token!["content"]!;
            if (!strings.ContainsValue(content))
            {
                strings[(int)token["id"]!] = content;
            }
        }
        foreach (var (id, token) in strings)
        {
            Assert.Equal(token, tokenizer.TokenString(id));
        }
        Assert.Equal(strings.Keys.Max() + 1, tokenizer.VocabularySize);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Streaming_one_id_at_a_time_gives_the_skipping_decode_in_whole_characters(string family)
    {
        var tokenizer = Load(family);
        var failures = new List<string>();
        foreach (var text in TokenizerCorpus.All())
        {
            var ids = new List<int>();
            tokenizer.Encode(text, ids, addSpecialTokens: true);
            var full = tokenizer.Decode(ids.ToArray(), skipSpecialTokens: true);
            var decoder = tokenizer.CreateDecoder();
            var chunks = ids.Select(decoder.Append).Append(decoder.Flush()).ToList();
            var streamed = string.Concat(chunks);
            if (streamed != full)
            {
                failures.Add($"{Show(text)}\n  full     {Show(full)}\n  streamed {Show(streamed)}");
            }
            foreach (var chunk in chunks)
            {
                if (!IsWellFormed(chunk) || (chunk.Contains('\uFFFD') && !full.Contains('\uFFFD')))
                {
                    failures.Add($"{Show(text)}: chunk {Show(chunk)} is not whole characters");
                }
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} failures:\n" + string.Join("\n", failures.Take(12)));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Streaming_after_a_prompt_context_continues_its_text(string family)
    {
        var tokenizer = Load(family);
        var failures = new List<string>();
        foreach (var text in TokenizerCorpus.Texts)
        {
            var ids = new List<int>();
            tokenizer.Encode(text, ids);
            for (var cut = 1; cut < ids.Count; cut += Math.Max(1, ids.Count / 4))
            {
                var context = ids.Take(cut).ToArray();
                var before = tokenizer.Decode(context, skipSpecialTokens: true);
                var whole = tokenizer.Decode(ids.ToArray(), skipSpecialTokens: true);
                if (!whole.StartsWith(before, StringComparison.Ordinal) || before.EndsWith('\uFFFD'))
                {
                    continue; // the cut splits a character or a merge: no plain continuation to compare with
                }
                var decoder = tokenizer.CreateDecoder(context);
                var streamed = string.Concat(ids.Skip(cut).Select(decoder.Append).Append(decoder.Flush()));
                if (streamed != whole[before.Length..])
                {
                    failures.Add($"{Show(text)} cut {cut}\n  expected {Show(whole[before.Length..])}\n  streamed {Show(streamed)}");
                }
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} failures:\n" + string.Join("\n", failures.Take(12)));
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void Encoding_ten_thousand_characters_takes_milliseconds(string family)
    {
        var tokenizer = Load(family);
        var text = string.Concat(Enumerable.Repeat(TokenizerCorpus.Long(), 2))[..10_000];
        var ids = new List<int>();
        tokenizer.Encode(text, ids);
        // Warm (words cached) and cold (a fresh tokenizer, nothing cached) timings.
        var watch = System.Diagnostics.Stopwatch.StartNew();
        ids.Clear();
        tokenizer.Encode(text + " fresh words zq", ids);
        var warm = watch.Elapsed.TotalMilliseconds;
        var path = TokenizerTestFiles.Path_(family);
        var fresh = TokenizerFactory.Create(new TokenizerSpec { Kind = TokenizerSpec.TokenizerJson, File = Path.GetFileName(path) }, Path.GetDirectoryName(path)!);
        fresh.Encode("warm up the regexes", []);
        watch.Restart();
        ids.Clear();
        fresh.Encode(text, ids);
        var cold = watch.Elapsed.TotalMilliseconds;
        output.WriteLine($"{family}: 10k characters -> {ids.Count} tokens, {cold:F1} ms cold, {warm:F1} ms warm");
        Assert.True(warm < 200 && cold < 1000, $"{cold:F1} ms cold, {warm:F1} ms warm for 10k characters");
    }

    private static readonly (int Low, int High)[] Blocks =
    [
        (0x20, 0x7E), (0xA0, 0xFF), (0x0300, 0x036F), (0x0370, 0x03FF), (0x0400, 0x04FF), (0x0590, 0x05FF), (0x0600, 0x06FF),
        (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x2070, 0x209F), (0x2100, 0x214F),
        (0x2150, 0x218F), (0x2460, 0x24FF), (0x3000, 0x303F), (0x3040, 0x30FF), (0x4E00, 0x4E80), (0xAC00, 0xAC80), (0xE000, 0xE010),
        (0xFB00, 0xFB4F), (0xFE00, 0xFE0F), (0xFF00, 0xFFEF), (0x1D400, 0x1D7FF), (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF), (0x20000, 0x20100),
        (0x0001, 0x001F), (0x007F, 0x009F), (0x10400, 0x1044F), (0x1F1E6, 0x1F1FF), (0x1F3FB, 0x1F3FF),
    ];

    private static bool IsWellFormed(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]))
            {
                if (i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]))
                {
                    return false;
                }
                i++;
            }
            else if (char.IsLowSurrogate(text[i]))
            {
                return false;
            }
        }
        return true;
    }

    private static string Show(string text)
    {
        var shown = System.Text.Json.JsonSerializer.Serialize(text.Length > 120 ? text[..120] + "…" : text);
        return shown;
    }
}
