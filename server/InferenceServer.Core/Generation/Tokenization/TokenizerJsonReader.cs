using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace InferenceServer.Generation.Tokenization;

/// <summary>
/// Reads a Hugging Face tokenizer.json into a <see cref="HuggingFaceTokenizer"/>. Anything malformed or unsupported throws
/// a <see cref="TokenizerFormatException"/> whose message names the file and the JSON path of the part.
/// </summary>
internal sealed class TokenizerJsonReader
{
    private readonly string _file;

    private TokenizerJsonReader(string file) => _file = file;

    /// <summary>Reads the tokenizer.json at <paramref name="path"/>; <paramref name="file"/> is the name messages use.</summary>
    public static HuggingFaceTokenizer Read(string path, string file)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true });
        return new TokenizerJsonReader(file).Read(document.RootElement);
    }

    private HuggingFaceTokenizer Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw Fail("", "has no 'model' object");
        }
        var normalizer = Optional(root, "normalizer") is { } n ? ReadNormalizer(n, "normalizer") : null;
        var preTokenizer = Optional(root, "pre_tokenizer") is { } p ? ReadPreTokenizer(p, "pre_tokenizer") : null;
        var tokenizerModel = ReadModel(model);
        var added = ReadAddedTokens(root);
        for (var i = 0; i < added.Count; i++)
        {
            // As Rust's AddedVocabulary: content the model already has keeps the model's id, whatever the file says.
            if (tokenizerModel.TokenToId(added[i].Content) is { } modelId && modelId != added[i].Id)
            {
                added[i] = added[i] with { Id = modelId };
            }
        }
        var vocabulary = new AddedVocabulary(added, normalizer);
        var postProcessor = Optional(root, "post_processor") is { } pp ? ReadPostProcessor(pp, "post_processor", vocabulary, tokenizerModel) : null;
        var decoder = Optional(root, "decoder") is { } d ? ReadDecoder(d, "decoder") : null;
        return new HuggingFaceTokenizer(tokenizerModel, normalizer, preTokenizer, postProcessor, decoder, vocabulary);
    }

    private TokenizerFormatException Fail(string where, string message) =>
        new($"{_file}{(where.Length > 0 ? " " + where : "")} {message}");

    private static JsonElement? Optional(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private string Type(JsonElement element, string where)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Fail(where, "is not an object");
        }
        return String(element, "type", where) ?? throw Fail(where, "has no 'type'");
    }

    private string? String(JsonElement element, string name, string where)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Fail($"{where}.{name}", "is not a string");
    }

    private bool? Bool(JsonElement element, string name, string where)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : throw Fail($"{where}.{name}", "is not a boolean");
    }

    private int? Int(JsonElement element, string name, string where)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }
        return value.TryGetInt32(out var result) ? result : throw Fail($"{where}.{name}", "is not an integer");
    }

    private JsonElement Array(JsonElement element, string name, string where) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.Array ? value : throw Fail(where, $"has no '{name}' array");

    private char Char(JsonElement element, string name, string where, char fallback)
    {
        var text = String(element, name, where);
        if (text is null)
        {
            return fallback;
        }
        return text.Length == 1 ? text[0] : throw Fail($"{where}.{name}", $"'{text}' is not a single character");
    }

    // A {"String": "..."} or {"Regex": "..."} pattern.
    private (string? Literal, Regex? Regex) Pattern(JsonElement element, string where)
    {
        if (!element.TryGetProperty("pattern", out var pattern) || pattern.ValueKind != JsonValueKind.Object)
        {
            throw Fail(where, "has no 'pattern' object");
        }
        if (String(pattern, "String", where + ".pattern") is { } literal)
        {
            return (literal, null);
        }
        if (String(pattern, "Regex", where + ".pattern") is { } regex)
        {
            return (null, Compile(regex, where + ".pattern.Regex"));
        }
        throw Fail(where + ".pattern", "is neither {\"String\": …} nor {\"Regex\": …}");
    }

    private Regex Compile(string pattern, string where)
    {
        try
        {
            return TextSplits.Compile(pattern, where);
        }
        catch (TokenizerFormatException e)
        {
            throw Fail("", e.Message);
        }
    }

    private Normalizer ReadNormalizer(JsonElement element, string where)
    {
        var type = Type(element, where);
        where = $"{where} '{type}'";
        switch (type)
        {
            case "NFC": return new UnicodeNormalizer(NormalizationForm.FormC);
            case "NFD": return new UnicodeNormalizer(NormalizationForm.FormD);
            case "NFKC": return new UnicodeNormalizer(NormalizationForm.FormKC);
            case "NFKD": return new UnicodeNormalizer(NormalizationForm.FormKD);
            case "Lowercase": return new LowercaseNormalizer();
            case "StripAccents": return new StripAccentsNormalizer();
            case "ByteLevel": return new ByteLevelNormalizer();
            case "Strip": return new StripNormalizer(Bool(element, "strip_left", where) ?? true, Bool(element, "strip_right", where) ?? true);
            case "Prepend": return new PrependNormalizer(String(element, "prepend", where) ?? throw Fail(where, "has no 'prepend'"));
            case "Replace":
            {
                var (literal, regex) = Pattern(element, where);
                return new ReplaceNormalizer(literal, regex, String(element, "content", where) ?? throw Fail(where, "has no 'content'"));
            }
            case "BertNormalizer":
                return new BertNormalizer(Bool(element, "clean_text", where) ?? true, Bool(element, "handle_chinese_chars", where) ?? true,
                    Bool(element, "strip_accents", where), Bool(element, "lowercase", where) ?? true);
            case "Precompiled":
            {
                var blob = String(element, "precompiled_charsmap", where);
                if (string.IsNullOrEmpty(blob))
                {
                    // An empty charsmap normalizes nothing (Rust accepts it too).
                    return new SequenceNormalizer([]);
                }
                byte[] bytes;
                try
                {
                    bytes = Convert.FromBase64String(blob);
                }
                catch (FormatException)
                {
                    throw Fail(where + ".precompiled_charsmap", "is not base64");
                }
                try
                {
                    return new PrecompiledNormalizer(bytes);
                }
                catch (TokenizerFormatException e)
                {
                    throw Fail("", e.Message);
                }
            }
            case "Sequence":
                return new SequenceNormalizer(Steps(element, "normalizers", where, "normalizer.normalizers", (step, at) => ReadNormalizer(step, at)));
            default:
                throw Fail(where, "is not a supported normalizer (NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, BertNormalizer, Precompiled, ByteLevel, Sequence)");
        }
    }

    private PreTokenizer ReadPreTokenizer(JsonElement element, string where)
    {
        var type = Type(element, where);
        where = $"{where} '{type}'";
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPreTokenizer(Bool(element, "add_prefix_space", where) ?? true, Bool(element, "use_regex", where) ?? true);
            case "Split":
            {
                var (literal, regex) = Pattern(element, where);
                regex ??= Compile(Regex.Escape(literal!), where);
                return new SplitPreTokenizer(regex, Behavior(element, where, SplitBehavior.Isolated, required: true), Bool(element, "invert", where) ?? false);
            }
            case "Metaspace":
            {
                var replacement = Char(element, "replacement", where, '▁');
                var scheme = String(element, "prepend_scheme", where) switch
                {
                    "always" => MetaspacePrependScheme.Always,
                    "first" => MetaspacePrependScheme.First,
                    "never" => MetaspacePrependScheme.Never,
                    null => Bool(element, "add_prefix_space", where) == false ? MetaspacePrependScheme.Never : MetaspacePrependScheme.Always,
                    var other => throw Fail(where + ".prepend_scheme", $"'{other}' is not always, first or never"),
                };
                return new MetaspacePreTokenizer(replacement, scheme, Bool(element, "split", where) ?? true);
            }
            case "Whitespace": return new WhitespacePreTokenizer();
            case "WhitespaceSplit": return new WhitespaceSplitPreTokenizer();
            case "BertPreTokenizer": return new BertPreTokenizer();
            case "Punctuation": return new PunctuationPreTokenizer(Behavior(element, where, SplitBehavior.Isolated, required: false));
            case "Digits": return new DigitsPreTokenizer(Bool(element, "individual_digits", where) ?? false);
            case "CharDelimiterSplit":
            {
                var delimiter = String(element, "delimiter", where);
                if (delimiter is null || !Rune.TryGetRuneAt(delimiter, 0, out var rune) || rune.Utf16SequenceLength != delimiter.Length)
                {
                    throw Fail(where + ".delimiter", "is not one character");
                }
                return new CharDelimiterPreTokenizer(rune.Value);
            }
            case "Sequence":
                return new SequencePreTokenizer(Steps(element, "pretokenizers", where, "pre_tokenizer.pretokenizers", (step, at) => ReadPreTokenizer(step, at)));
            default:
                throw Fail(where, "is not a supported pre-tokenizer (ByteLevel, Split, Metaspace, Whitespace, WhitespaceSplit, BertPreTokenizer, Punctuation, Digits, CharDelimiterSplit, Sequence)");
        }
    }

    /// <summary>The steps of a Sequence (normalizers, pre-tokenizers, processors or decoders), each read by <paramref name="read"/> and named <c>path[i]</c> in errors.</summary>
    private List<T> Steps<T>(JsonElement element, string key, string where, string path, Func<JsonElement, string, T> read)
    {
        var steps = new List<T>();
        var i = 0;
        foreach (var step in Array(element, key, where).EnumerateArray())
        {
            steps.Add(read(step, $"{path}[{i++}]"));
        }
        return steps;
    }

    private SplitBehavior Behavior(JsonElement element, string where, SplitBehavior fallback, bool required)
    {
        var behavior = String(element, "behavior", where);
        if (behavior is null)
        {
            return required ? throw Fail(where, "has no 'behavior'") : fallback;
        }
        return behavior switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw Fail(where + ".behavior", $"'{behavior}' is not Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous"),
        };
    }

    private TokenizerModel ReadModel(JsonElement model)
    {
        var type = String(model, "type", "model");
        if (type is null)
        {
            // Older files leave out model.type; the shape of the vocabulary tells.
            type = model.TryGetProperty("vocab", out var v) && v.ValueKind == JsonValueKind.Array ? "Unigram"
                : model.TryGetProperty("merges", out _) ? "BPE"
                : model.TryGetProperty("continuing_subword_prefix", out _) ? "WordPiece" : "WordLevel";
        }
        var where = $"model '{type}'";
        switch (type)
        {
            case "BPE":
            {
                // dropout is a training-time regularizer; inference encodes deterministically, as transformers does with dropout null.
                var vocabulary = ReadVocabulary(model, where);
                var merges = new List<(string, string)>();
                var i = 0;
                foreach (var merge in Array(model, "merges", where).EnumerateArray())
                {
                    if (merge.ValueKind == JsonValueKind.String)
                    {
                        var text = merge.GetString()!;
                        var space = text.IndexOf(' ');
                        if (space < 0)
                        {
                            throw Fail($"{where}.merges[{i}]", $"'{text}' is not two tokens separated by a space");
                        }
                        merges.Add((text[..space], text[(space + 1)..]));
                    }
                    else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                        && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
                    {
                        merges.Add((merge[0].GetString()!, merge[1].GetString()!));
                    }
                    else
                    {
                        throw Fail($"{where}.merges[{i}]", "is neither \"a b\" nor [\"a\", \"b\"]");
                    }
                    i++;
                }
                try
                {
                    return new BpeModel(vocabulary, merges, String(model, "unk_token", where), String(model, "continuing_subword_prefix", where),
                        String(model, "end_of_word_suffix", where), Bool(model, "fuse_unk", where) ?? false, Bool(model, "byte_fallback", where) ?? false,
                        Bool(model, "ignore_merges", where) ?? false);
                }
                catch (TokenizerFormatException e)
                {
                    throw Fail("", e.Message);
                }
            }
            case "WordPiece":
                return new WordPieceModel(ReadVocabulary(model, where), String(model, "unk_token", where) ?? "[UNK]",
                    String(model, "continuing_subword_prefix", where) ?? "##", Int(model, "max_input_chars_per_word", where) ?? 100);
            case "WordLevel":
                return new WordLevelModel(ReadVocabulary(model, where), String(model, "unk_token", where));
            case "Unigram":
            {
                var pieces = new List<(string, double)>();
                var i = 0;
                foreach (var entry in Array(model, "vocab", where).EnumerateArray())
                {
                    if (entry.ValueKind != JsonValueKind.Array || entry.GetArrayLength() != 2 || entry[0].ValueKind != JsonValueKind.String
                        || entry[1].ValueKind != JsonValueKind.Number)
                    {
                        throw Fail($"{where}.vocab[{i}]", "is not a [piece, score] pair");
                    }
                    pieces.Add((entry[0].GetString()!, entry[1].GetDouble()));
                    i++;
                }
                try
                {
                    return new UnigramModel(pieces, Int(model, "unk_id", where), Bool(model, "byte_fallback", where) ?? false);
                }
                catch (TokenizerFormatException e)
                {
                    throw Fail("", e.Message);
                }
            }
            default:
                throw Fail(where, "is not a supported model (BPE, WordPiece, WordLevel, Unigram)");
        }
    }

    private Dictionary<string, int> ReadVocabulary(JsonElement model, string where)
    {
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
        {
            throw Fail(where, "has no 'vocab' object of token ids");
        }
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocab.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var id) || id < 0)
            {
                throw Fail(where + ".vocab", $"gives token '{entry.Name}' the id {entry.Value}, not a non-negative integer");
            }
            vocabulary[entry.Name] = id;
        }
        return vocabulary;
    }

    private List<AddedToken> ReadAddedTokens(JsonElement root)
    {
        var tokens = new List<AddedToken>();
        if (Optional(root, "added_tokens") is not { } added)
        {
            return tokens;
        }
        if (added.ValueKind != JsonValueKind.Array)
        {
            throw Fail("added_tokens", "is not an array");
        }
        var i = 0;
        foreach (var token in added.EnumerateArray())
        {
            var where = $"added_tokens[{i++}]";
            var id = Int(token, "id", where) ?? throw Fail(where, "has no 'id'");
            var content = String(token, "content", where) ?? throw Fail(where, "has no 'content'");
            var special = Bool(token, "special", where) ?? false;
            tokens.Add(new AddedToken(id, content, Bool(token, "single_word", where) ?? false, Bool(token, "lstrip", where) ?? false,
                Bool(token, "rstrip", where) ?? false, Bool(token, "normalized", where) ?? !special, special));
        }
        return tokens;
    }

    private PostProcessor ReadPostProcessor(JsonElement element, string where, AddedVocabulary added, TokenizerModel model)
    {
        var type = Type(element, where);
        where = $"{where} '{type}'";
        switch (type)
        {
            case "ByteLevel":
                return new NoOpProcessor();
            case "TemplateProcessing":
            {
                var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
                if (element.TryGetProperty("special_tokens", out var map) && map.ValueKind == JsonValueKind.Object)
                {
                    foreach (var entry in map.EnumerateObject())
                    {
                        var ids = Array(entry.Value, "ids", $"{where}.special_tokens.{entry.Name}").EnumerateArray()
                            .Select(id => id.TryGetInt32(out var v) ? v : throw Fail($"{where}.special_tokens.{entry.Name}.ids", "holds a non-integer")).ToArray();
                        specials[String(entry.Value, "id", where) ?? entry.Name] = ids;
                    }
                }
                return new TemplateProcessor(Template(element, "single", where, specials), Template(element, "pair", where, specials));
            }
            case "BertProcessing":
            case "RobertaProcessing":
            {
                var cls = TokenPair(element, "cls", where);
                var sep = TokenPair(element, "sep", where);
                return new ClsSepProcessor(cls, sep);
            }
            case "Sequence":
                return new SequenceProcessor(Steps(element, "processors", where, "post_processor.processors", (step, at) => ReadPostProcessor(step, at, added, model)));
            default:
                throw Fail(where, "is not a supported post-processor (TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence)");
        }
    }

    private List<TemplatePiece> Template(JsonElement element, string name, string where, Dictionary<string, int[]> specials)
    {
        var pieces = new List<TemplatePiece>();
        if (Optional(element, name) is not { } template)
        {
            return pieces;
        }
        if (template.ValueKind != JsonValueKind.Array)
        {
            throw Fail($"{where}.{name}", "is not an array");
        }
        foreach (var item in template.EnumerateArray())
        {
            if (item.TryGetProperty("SpecialToken", out var special))
            {
                var id = String(special, "id", $"{where}.{name}") ?? throw Fail($"{where}.{name}", "has a SpecialToken without 'id'");
                pieces.Add(new TemplatePiece(specials.TryGetValue(id, out var ids) ? ids : throw Fail($"{where}.{name}", $"uses special token '{id}', which special_tokens does not define"), null));
            }
            else if (item.TryGetProperty("Sequence", out var sequence))
            {
                pieces.Add(new TemplatePiece(null, String(sequence, "id", $"{where}.{name}") ?? "A"));
            }
            else
            {
                throw Fail($"{where}.{name}", $"has an element {item.GetRawText()} that is neither SpecialToken nor Sequence");
            }
        }
        return pieces;
    }

    // ["[CLS]", 101]
    private int TokenPair(JsonElement element, string name, string where)
    {
        if (!element.TryGetProperty(name, out var pair) || pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2 || !pair[1].TryGetInt32(out var id))
        {
            throw Fail($"{where}.{name}", "is not a [token, id] pair");
        }
        return id;
    }

    private Decoder ReadDecoder(JsonElement element, string where)
    {
        var type = Type(element, where);
        where = $"{where} '{type}'";
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "Metaspace":
            {
                var scheme = String(element, "prepend_scheme", where) switch
                {
                    "always" => MetaspacePrependScheme.Always,
                    "first" => MetaspacePrependScheme.First,
                    "never" => MetaspacePrependScheme.Never,
                    null => Bool(element, "add_prefix_space", where) == false ? MetaspacePrependScheme.Never : MetaspacePrependScheme.Always,
                    var other => throw Fail(where + ".prepend_scheme", $"'{other}' is not always, first or never"),
                };
                return new MetaspaceDecoder(Char(element, "replacement", where, '▁'), scheme);
            }
            case "WordPiece": return new WordPieceDecoder(String(element, "prefix", where) ?? "##", Bool(element, "cleanup", where) ?? true);
            case "BPEDecoder": return new BpeDecoder(String(element, "suffix", where) ?? "</w>");
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Strip":
            {
                var content = String(element, "content", where) ?? " ";
                if (!Rune.TryGetRuneAt(content, 0, out var rune) || rune.Utf16SequenceLength != content.Length)
                {
                    throw Fail(where + ".content", "is not one character");
                }
                return new StripDecoder(rune.Value, Int(element, "start", where) ?? 0, Int(element, "stop", where) ?? 0);
            }
            case "Replace":
            {
                var (literal, regex) = Pattern(element, where);
                return new ReplaceDecoder(literal, regex, String(element, "content", where) ?? throw Fail(where, "has no 'content'"));
            }
            case "CTC":
                return new CtcDecoder(String(element, "pad_token", where) ?? "<pad>", String(element, "word_delimiter_token", where) ?? "|",
                    Bool(element, "cleanup", where) ?? true);
            case "Sequence":
                return new SequenceDecoder(Steps(element, "decoders", where, "decoder.decoders", (step, at) => ReadDecoder(step, at)));
            default:
                throw Fail(where, "is not a supported decoder (ByteLevel, Metaspace, WordPiece, BPEDecoder, ByteFallback, Fuse, Strip, Replace, CTC, Sequence)");
        }
    }
}
