using System.Globalization;
using System.Text.Json;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The tokenizer files a Hugging Face export carries beside the graph: <c>tokenizer.json</c> (the <c>tokenizers</c>
/// library's format: a byte-level BPE with GPT-2's ByteLevel pre-tokenizer and decoder, <see cref="ByteLevelBpeVocabulary"/>,
/// and a template that puts the BOS token first, as Llama 3's does) and <c>tokenizer_config.json</c> (<c>transformers</c>'
/// settings: the special tokens, <c>add_bos_token</c>, <c>model_max_length</c>).
/// </summary>
public static class HuggingFaceTokenizerFiles
{
    /// <summary>File name of the tokenizer.</summary>
    public const string TokenizerFileName = "tokenizer.json";

    /// <summary>File name of the tokenizer's settings.</summary>
    public const string TokenizerConfigFileName = "tokenizer_config.json";

    /// <summary>The contents of <c>tokenizer.json</c> for <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The options are invalid, or the vocabulary cannot hold the byte and special tokens.</exception>
    public static string Tokenizer(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var vocabulary = ByteLevelBpeVocabulary.Create(options);
        var specials = DecoderSpecialTokens.Of(options);
        return HuggingFaceConfigFiles.Json(w =>
        {
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            foreach (var (id, text) in specials.ById)
            {
                w.WriteStartObject();
                w.WriteNumber("id", id);
                w.WriteString("content", text);
                AddedTokenFlags(w);
                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteNull("normalizer");
            w.WriteStartObject("pre_tokenizer");
            ByteLevel(w, addPrefixSpace: false);
            w.WriteEndObject();
            w.WriteStartObject("post_processor");
            BosTemplate(w, specials.Bos, options.BosTokenId);
            w.WriteEndObject();
            w.WriteStartObject("decoder");
            ByteLevel(w, addPrefixSpace: true);
            w.WriteEndObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteBoolean("ignore_merges", false);
            w.WriteStartObject("vocab");
            for (int id = 0; id < vocabulary.Tokens.Count; id++)
            {
                w.WriteNumber(vocabulary.Tokens[id], id);
            }

            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (string merge in vocabulary.Merges)
            {
                w.WriteStringValue(merge);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    /// <summary>The contents of <c>tokenizer_config.json</c> for <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentException">The options are invalid, or the vocabulary cannot hold the byte and special tokens.</exception>
    public static string TokenizerConfig(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        DecoderSpecialTokens.CheckVocabulary(options);
        var specials = DecoderSpecialTokens.Of(options);
        return HuggingFaceConfigFiles.Json(w =>
        {
            w.WriteBoolean("add_bos_token", true);
            w.WriteBoolean("add_eos_token", false);
            w.WriteStartObject("added_tokens_decoder");
            foreach (var (id, text) in specials.ById)
            {
                w.WriteStartObject(id.ToString(CultureInfo.InvariantCulture));
                w.WriteString("content", text);
                AddedTokenFlags(w);
                w.WriteEndObject();
            }

            w.WriteEndObject();
            w.WriteString("bos_token", specials.Bos);
            w.WriteBoolean("clean_up_tokenization_spaces", false);
            w.WriteString("eos_token", specials.Eos);
            w.WriteNumber("model_max_length", options.MaxPositions);
            w.WriteString("pad_token", specials.Pad);
            w.WriteString("tokenizer_class", "PreTrainedTokenizerFast");
        });
    }

    private static void AddedTokenFlags(Utf8JsonWriter w)
    {
        w.WriteBoolean("single_word", false);
        w.WriteBoolean("lstrip", false);
        w.WriteBoolean("rstrip", false);
        w.WriteBoolean("normalized", false);
        w.WriteBoolean("special", true);
    }

    private static void ByteLevel(Utf8JsonWriter w, bool addPrefixSpace)
    {
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", addPrefixSpace);
        w.WriteBoolean("trim_offsets", true);
        w.WriteBoolean("use_regex", true);
    }

    // "<s> $A" for one sequence, "<s> $A <s> $B" for a pair: what Llama 3's tokenizer.json says.
    private static void BosTemplate(Utf8JsonWriter w, string bos, int bosId)
    {
        w.WriteString("type", "TemplateProcessing");
        w.WriteStartArray("single");
        Special(w, bos, 0);
        Sequence(w, "A", 0);
        w.WriteEndArray();
        w.WriteStartArray("pair");
        Special(w, bos, 0);
        Sequence(w, "A", 0);
        Special(w, bos, 1);
        Sequence(w, "B", 1);
        w.WriteEndArray();
        w.WriteStartObject("special_tokens");
        w.WriteStartObject(bos);
        w.WriteString("id", bos);
        w.WriteStartArray("ids");
        w.WriteNumberValue(bosId);
        w.WriteEndArray();
        w.WriteStartArray("tokens");
        w.WriteStringValue(bos);
        w.WriteEndArray();
        w.WriteEndObject();
        w.WriteEndObject();

        static void Special(Utf8JsonWriter w, string id, int typeId)
        {
            w.WriteStartObject();
            w.WriteStartObject("SpecialToken");
            w.WriteString("id", id);
            w.WriteNumber("type_id", typeId);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        static void Sequence(Utf8JsonWriter w, string id, int typeId)
        {
            w.WriteStartObject();
            w.WriteStartObject("Sequence");
            w.WriteString("id", id);
            w.WriteNumber("type_id", typeId);
            w.WriteEndObject();
            w.WriteEndObject();
        }
    }
}
