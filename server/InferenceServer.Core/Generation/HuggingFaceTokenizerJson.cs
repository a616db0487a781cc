using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace InferenceServer.Generation;

/// <summary>
/// Reads the byte-level BPE subset of Hugging Face tokenizer.json (GPT-2, Llama 3, Qwen 2 and the like), which
/// Microsoft.ML.Tokenizers cannot load itself, into the vocabulary and merges its BPE tokenizer takes.
/// </summary>
internal static class HuggingFaceTokenizerJson
{
    /// <summary>What a byte-level BPE tokenizer is built from; <see cref="Pattern"/> null means the pre-tokenizer does not split.</summary>
    internal sealed record BpeModel(Dictionary<string, int> Vocabulary, List<string> Merges, Dictionary<string, int> Special, string? Pattern, bool Nfc)
    {
        public int VocabularySize
        {
            get
            {
                var max = -1;
                foreach (var id in Vocabulary.Values)
                {
                    max = Math.Max(max, id);
                }
                foreach (var id in Special.Values)
                {
                    max = Math.Max(max, id);
                }
                return max + 1;
            }
        }

        public BpeTokenizer Create()
        {
            var special = Special.Count > 0 ? Special : null;
            // RegexPreTokenizer also cuts special tokens out of the text before the regex runs, so they encode as one id.
            var regex = TokenizerFactory.CompilePattern(Pattern ?? @"[\s\S]+");
            return BpeTokenizer.Create(new BpeOptions(Vocabulary)
            {
                Merges = Merges,
                ByteLevel = true,
                SpecialTokens = special,
                PreTokenizer = new RegexPreTokenizer(regex, special),
                Normalizer = Nfc ? new NfcNormalizer() : null,
            });
        }
    }

    /// <summary>Reads a vocab.json: one object mapping token to id.</summary>
    public static Dictionary<string, int> ReadVocabulary(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        return ReadVocabulary(document.RootElement, "vocab.json");
    }

    /// <summary>Reads a tokenizer.json; anything outside the supported subset throws an ArgumentException naming it.</summary>
    public static BpeModel Read(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerFormatException("tokenizer.json has no 'model' object");
        }
        // Older files leave out model.type; a vocab with merges is BPE either way.
        var type = String(model, "type");
        if (type is not null && type != "BPE")
        {
            throw new TokenizerFormatException($"tokenizer.json model type '{type}' is not supported (only BPE)");
        }
        foreach (var affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (!string.IsNullOrEmpty(String(model, affix)))
            {
                throw new TokenizerFormatException($"tokenizer.json model.{affix} is not supported");
            }
        }
        if (!model.TryGetProperty("vocab", out var vocab))
        {
            throw new TokenizerFormatException("tokenizer.json has no model.vocab");
        }
        var vocabulary = ReadVocabulary(vocab, "tokenizer.json model.vocab");
        var merges = ReadMerges(model);
        var pattern = ReadPreTokenizer(root);
        var nfc = ReadNormalizer(root);
        if (root.TryGetProperty("decoder", out var decoder) && decoder.ValueKind == JsonValueKind.Object && String(decoder, "type") is { } decoderType && decoderType != "ByteLevel")
        {
            throw new TokenizerFormatException($"tokenizer.json decoder '{decoderType}' is not supported (only ByteLevel)");
        }
        var special = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in added.EnumerateArray())
            {
                if (String(token, "content") is { } content && token.TryGetProperty("id", out var id) && id.TryGetInt32(out var value))
                {
                    special[content] = value;
                }
            }
        }
        return new BpeModel(vocabulary, merges, special, pattern, nfc);
    }

    private static Dictionary<string, int> ReadVocabulary(JsonElement vocab, string where)
    {
        if (vocab.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerFormatException($"{where} is not an object of token ids");
        }
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var id) || id < 0)
            {
                throw new TokenizerFormatException($"{where} gives token '{entry.Name}' the id {entry.Value}, not a non-negative integer");
            }
            vocabulary[entry.Name] = id;
        }
        return vocabulary;
    }

    // Merges are "a b" strings (older files) or ["a", "b"] pairs (newer ones); the BPE tokenizer takes the string form.
    private static List<string> ReadMerges(JsonElement model)
    {
        var merges = new List<string>();
        if (!model.TryGetProperty("merges", out var array) || array.ValueKind != JsonValueKind.Array)
        {
            throw new TokenizerFormatException("tokenizer.json has no model.merges array");
        }
        foreach (var merge in array.EnumerateArray())
        {
            if (merge.ValueKind == JsonValueKind.String)
            {
                merges.Add(merge.GetString()!);
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                && merge[0].GetString() is { } left && merge[1].GetString() is { } right)
            {
                if (left.Contains(' ') || right.Contains(' '))
                {
                    throw new TokenizerFormatException($"tokenizer.json merge [\"{left}\", \"{right}\"] contains a space, which the merges format cannot express");
                }
                merges.Add(left + " " + right);
            }
            else
            {
                throw new TokenizerFormatException($"tokenizer.json merge {merge} is neither \"a b\" nor [\"a\", \"b\"]");
            }
        }
        return merges;
    }

    // Supported: ByteLevel (GPT-2 regex or none), or Sequence[Split(regex, Isolated), ByteLevel(use_regex false)] as Llama 3 and Qwen 2 use.
    private static string? ReadPreTokenizer(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pre) || pre.ValueKind != JsonValueKind.Object)
        {
            throw new TokenizerFormatException("tokenizer.json has no pre_tokenizer; only byte-level BPE (pre_tokenizer ByteLevel) is supported — for a SentencePiece model use kind 'sentencepiece' with its .model file");
        }
        var type = String(pre, "type");
        if (type == "ByteLevel")
        {
            return ByteLevel(pre, allowRegex: true);
        }
        if (type != "Sequence" || !pre.TryGetProperty("pretokenizers", out var steps) || steps.ValueKind != JsonValueKind.Array)
        {
            throw new TokenizerFormatException($"tokenizer.json pre_tokenizer '{type}' is not supported (only ByteLevel, or a Split regex followed by ByteLevel)");
        }
        string? split = null;
        var sawByteLevel = false;
        foreach (var step in steps.EnumerateArray())
        {
            var stepType = String(step, "type");
            if (stepType == "ByteLevel" && !sawByteLevel)
            {
                var pattern = ByteLevel(step, allowRegex: split is null);
                split ??= pattern;
                sawByteLevel = true;
            }
            else if (stepType == "Split" && split is null && !sawByteLevel)
            {
                split = Split(step);
            }
            else
            {
                throw new TokenizerFormatException($"tokenizer.json pre_tokenizer step '{stepType}' is not supported here (only one Split followed by ByteLevel)");
            }
        }
        if (!sawByteLevel)
        {
            throw new TokenizerFormatException("tokenizer.json pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
        }
        return split;
    }

    private static string? ByteLevel(JsonElement step, bool allowRegex)
    {
        if (Bool(step, "add_prefix_space") == true)
        {
            throw new TokenizerFormatException("tokenizer.json ByteLevel add_prefix_space is not supported");
        }
        var useRegex = Bool(step, "use_regex") ?? true;
        if (useRegex && !allowRegex)
        {
            throw new TokenizerFormatException("tokenizer.json ByteLevel use_regex after a Split is not supported");
        }
        return useRegex ? TokenizerFactory.Gpt2Pattern : null;
    }

    private static string Split(JsonElement step)
    {
        if (String(step, "behavior") is { } behavior && behavior != "Isolated")
        {
            throw new TokenizerFormatException($"tokenizer.json Split behavior '{behavior}' is not supported (only Isolated)");
        }
        if (Bool(step, "invert") == true)
        {
            throw new TokenizerFormatException("tokenizer.json Split invert is not supported");
        }
        if (step.TryGetProperty("pattern", out var pattern) && pattern.ValueKind == JsonValueKind.Object)
        {
            if (String(pattern, "Regex") is { } regex)
            {
                return regex;
            }
            if (String(pattern, "String") is { } literal)
            {
                return System.Text.RegularExpressions.Regex.Escape(literal);
            }
        }
        throw new TokenizerFormatException("tokenizer.json Split has no Regex or String pattern");
    }

    private static bool ReadNormalizer(JsonElement root)
    {
        if (!root.TryGetProperty("normalizer", out var normalizer) || normalizer.ValueKind == JsonValueKind.Null)
        {
            return false;
        }
        var type = String(normalizer, "type");
        if (type == "NFC")
        {
            return true;
        }
        if (type == "Sequence" && normalizer.TryGetProperty("normalizers", out var steps) && steps.ValueKind == JsonValueKind.Array && steps.GetArrayLength() == 0)
        {
            return false;
        }
        throw new TokenizerFormatException($"tokenizer.json normalizer '{type}' is not supported (only none or NFC)");
    }

    private static string? String(JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static bool? Bool(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : null;

    /// <summary>Unicode NFC, as Qwen 2's tokenizer.json asks for.</summary>
    private sealed class NfcNormalizer : Normalizer
    {
        public override string Normalize(string original) => original.Normalize(NormalizationForm.FormC);

        public override string Normalize(ReadOnlySpan<char> original) => original.ToString().Normalize(NormalizationForm.FormC);
    }
}
