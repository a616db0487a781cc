using System.Text;
using InferenceServer.Configuration;
using InferenceServer.Generation.Tokenization;
using Microsoft.ML.Tokenizers;

namespace InferenceServer.Generation;

/// <summary>Builds the tokenizer a <see cref="TokenizerSpec"/> describes, reading its files from the model directory.</summary>
public static class TokenizerFactory
{
    /// <summary>GPT-2's pre-tokenizer split (Hugging Face ByteLevel with use_regex), used for vocab.json/merges.txt and tokenizer.json ByteLevel.</summary>
    internal const string Gpt2Pattern = ByteLevelPreTokenizer.Gpt2Pattern;

    // Microsoft.ML.Tokenizers picks a tiktoken pre-tokenizer by OpenAI model name only, so each encoding maps to a model that uses it.
    private static readonly Dictionary<string, string> ModelByEncoding = new(StringComparer.OrdinalIgnoreCase)
    {
        ["cl100k_base"] = "gpt-4",
        ["o200k_base"] = "gpt-4o",
        ["p50k_base"] = "text-davinci-003",
        ["p50k_edit"] = "text-davinci-edit-001",
        ["r50k_base"] = "davinci",
        ["gpt2"] = "gpt2",
    };

    /// <summary>Creates the tokenizer of <paramref name="spec"/>; its file paths are relative to <paramref name="modelDirectory"/> and must stay inside it.</summary>
    /// <exception cref="ArgumentException">The spec is incomplete or inconsistent, a file is missing or outside the directory, or a file cannot be loaded or uses an unsupported feature.</exception>
    public static ITokenizer Create(TokenizerSpec spec, string modelDirectory)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(modelDirectory);
        switch (spec.Kind?.ToLowerInvariant())
        {
            case TokenizerSpec.Characters:
                return CreateCharacters(spec);
            case TokenizerSpec.Bpe:
            {
                var vocabPath = Resolve(modelDirectory, spec.VocabFile ?? "vocab.json", "vocab_file");
                var mergesPath = Resolve(modelDirectory, spec.MergesFile ?? "merges.txt", "merges_file");
                var vocabulary = Load(spec.VocabFile ?? "vocab.json", () => ReadVocabulary(vocabPath));
                var merges = Load(spec.MergesFile ?? "merges.txt", () => ReadMerges(mergesPath));
                // GPT-2 keeps <|endoftext|> in vocab.json; registering it (and any named EOS/BOS) as special lets prompts spell it.
                var special = new List<AddedToken>();
                foreach (var name in new[] { "<|endoftext|>", spec.EosToken, spec.BosToken }.Distinct())
                {
                    if (name is not null && vocabulary.TryGetValue(name, out var id))
                    {
                        special.Add(new AddedToken(id, name, SingleWord: false, Lstrip: false, Rstrip: false, Normalized: false, Special: true));
                    }
                }
                var tokenizer = Load(spec.MergesFile ?? "merges.txt", () => new HuggingFaceTokenizer(
                    new BpeModel(vocabulary, merges, null, null, null, fuseUnk: false, byteFallback: false, ignoreMerges: false),
                    normalizer: null, new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true), postProcessor: null,
                    new ByteLevelDecoder(), new AddedVocabulary(special, null)));
                return FinishJson(spec, tokenizer, defaultEos: "<|endoftext|>");
            }
            case TokenizerSpec.SentencePiece:
            {
                var file = spec.File ?? "tokenizer.model";
                var path = Resolve(modelDirectory, file, "file");
                var tokenizer = Load(file, () =>
                {
                    using var stream = System.IO.File.OpenRead(path);
                    // BOS and EOS are the caller's business (BosTokenId / EosTokenId), so Encode returns the text's ids only.
                    return SentencePieceTokenizer.Create(stream, addBeginningOfSentence: false, addEndOfSentence: false);
                });
                var size = MaxId(tokenizer.Vocabulary, tokenizer.SpecialTokens) + 1;
                var bos = spec.AddBos == false ? null : tokenizer.BeginningOfSentenceToken;
                return Finish(spec, tokenizer, size, defaultEos: tokenizer.EndOfSentenceToken, defaultBos: bos);
            }
            case TokenizerSpec.Tiktoken:
            {
                if (string.IsNullOrEmpty(spec.File))
                {
                    throw new ArgumentException("a tiktoken tokenizer needs 'file' (the .tiktoken ranks file)");
                }
                if (string.IsNullOrEmpty(spec.Encoding))
                {
                    throw new ArgumentException($"a tiktoken tokenizer needs 'encoding' for its pre-tokenizer ({string.Join(", ", ModelByEncoding.Keys)})");
                }
                var path = Resolve(modelDirectory, spec.File, "file");
                var modelName = ModelByEncoding.GetValueOrDefault(spec.Encoding, spec.Encoding);
                var tokenizer = Load(spec.File, () =>
                {
                    using var stream = System.IO.File.OpenRead(path);
                    try
                    {
                        return TiktokenTokenizer.CreateForModel(modelName, stream);
                    }
                    catch (NotSupportedException)
                    {
                        throw new TokenizerFormatException($"unknown tiktoken encoding '{spec.Encoding}' (known: {string.Join(", ", ModelByEncoding.Keys)}, or an OpenAI model name)");
                    }
                });
                // The library does not expose the ranks, so the vocabulary size comes from the file itself.
                var size = Math.Max(Load(spec.File, () => MaxTiktokenRank(path)), MaxId(null, tokenizer.SpecialTokens)) + 1;
                return Finish(spec, tokenizer, size, defaultEos: "<|endoftext|>", defaultBos: null);
            }
            case TokenizerSpec.TokenizerJson:
            {
                var file = spec.File ?? "tokenizer.json";
                var path = Resolve(modelDirectory, file, "file");
                var tokenizer = Load(file, () => TokenizerJsonReader.Read(path, file));
                return FinishJson(spec, tokenizer, defaultEos: "<|endoftext|>");
            }
            default:
                throw new ArgumentException(
                    $"unknown tokenizer kind '{spec.Kind}' (expected {TokenizerSpec.Characters}, {TokenizerSpec.Bpe}, {TokenizerSpec.SentencePiece}, {TokenizerSpec.Tiktoken} or {TokenizerSpec.TokenizerJson})");
        }
    }

    private static CharacterTokenizer CreateCharacters(TokenizerSpec spec)
    {
        if (string.IsNullOrEmpty(spec.Vocabulary))
        {
            throw new ArgumentException("a characters tokenizer needs 'vocabulary'");
        }
        var eos = spec.EosTokenId;
        if (spec.EosToken is { } token)
        {
            var index = token.Length == 1 ? spec.Vocabulary.IndexOf(token[0]) : -1;
            if (index < 0)
            {
                throw new ArgumentException($"eos_token '{token}' is not a character of the vocabulary");
            }
            if (eos is not null && eos != index)
            {
                throw new ArgumentException($"eos_token '{token}' is id {index} but eos_token_id is {eos}");
            }
            eos = index;
        }
        return new CharacterTokenizer(spec.Vocabulary, eos);
    }

    // Resolves the spec's special tokens against the loaded tokenizer; an explicit name that is missing is an error, a default that is missing is not.
    private static MlTokenizer Finish(TokenizerSpec spec, Tokenizer tokenizer, int vocabularySize, string? defaultEos, string? defaultBos)
    {
        var probe = new MlTokenizer(tokenizer, vocabularySize);
        int? eos = spec.EosTokenId;
        if (eos is { } eosId && (eosId < 0 || eosId >= vocabularySize))
        {
            throw new ArgumentException($"eos_token_id {eosId} is outside the vocabulary (0..{vocabularySize - 1})");
        }
        if (spec.EosToken is { } eosToken)
        {
            var id = probe.FindTokenId(eosToken) ?? throw new ArgumentException($"eos_token '{eosToken}' is not a token of the tokenizer");
            if (eos is not null && eos != id)
            {
                throw new ArgumentException($"eos_token '{eosToken}' is id {id} but eos_token_id is {eos}");
            }
            eos = id;
        }
        else if (eos is null && defaultEos is not null)
        {
            eos = probe.FindTokenId(defaultEos);
        }
        int? bos = null;
        if (spec.AddBos != false)
        {
            if (spec.BosToken is { } bosToken)
            {
                bos = probe.FindTokenId(bosToken) ?? throw new ArgumentException($"bos_token '{bosToken}' is not a token of the tokenizer");
            }
            else if (defaultBos is not null)
            {
                bos = probe.FindTokenId(defaultBos);
            }
        }
        return new MlTokenizer(tokenizer, vocabularySize, eos, bos);
    }

    // Resolves the spec's special tokens against a tokenizer.json pipeline. add_bos false keeps the template's BOS out of
    // prompts; a named BOS the template does not put first is prepended, so a prompt never gets two.
    private static HuggingFaceTokenizer FinishJson(TokenizerSpec spec, HuggingFaceTokenizer tokenizer, string? defaultEos)
    {
        var size = tokenizer.VocabularySize;
        int? eos = spec.EosTokenId;
        if (eos is { } eosId && (eosId < 0 || eosId >= size))
        {
            throw new ArgumentException($"eos_token_id {eosId} is outside the vocabulary (0..{size - 1})");
        }
        if (spec.EosToken is { } eosToken)
        {
            var id = tokenizer.FindTokenId(eosToken) ?? throw new ArgumentException($"eos_token '{eosToken}' is not a token of the tokenizer");
            if (eos is not null && eos != id)
            {
                throw new ArgumentException($"eos_token '{eosToken}' is id {id} but eos_token_id is {eos}");
            }
            eos = id;
        }
        else if (eos is null && defaultEos is not null)
        {
            eos = tokenizer.FindTokenId(defaultEos);
        }
        int? named = null;
        if (spec.BosToken is { } bosToken)
        {
            named = tokenizer.FindTokenId(bosToken) ?? throw new ArgumentException($"bos_token '{bosToken}' is not a token of the tokenizer");
        }
        var addBos = spec.AddBos != false;
        tokenizer.SetSpecialTokens(eos, named ?? (addBos ? tokenizer.TemplateLeadingId : null), addBos, named);
        return tokenizer;
    }

    private static Dictionary<string, int> ReadVocabulary(string path)
    {
        using var document = System.Text.Json.JsonDocument.Parse(System.IO.File.ReadAllBytes(path));
        if (document.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object)
        {
            throw new TokenizerFormatException($"{Path.GetFileName(path)} is not an object of token ids");
        }
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in document.RootElement.EnumerateObject())
        {
            if (!entry.Value.TryGetInt32(out var id) || id < 0)
            {
                throw new TokenizerFormatException($"{Path.GetFileName(path)} gives token '{entry.Name}' the id {entry.Value}, not a non-negative integer");
            }
            vocabulary[entry.Name] = id;
        }
        return vocabulary;
    }

    /// <summary>The absolute path of <paramref name="relative"/>, which must name an existing file inside <paramref name="modelDirectory"/>.</summary>
    internal static string Resolve(string modelDirectory, string relative, string field)
    {
        if (string.IsNullOrWhiteSpace(relative))
        {
            throw new ArgumentException($"tokenizer '{field}' is empty");
        }
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelDirectory)) + Path.DirectorySeparatorChar;
        var full = Path.GetFullPath(Path.Combine(root, relative));
        if (!full.StartsWith(root, StringComparison.Ordinal))
        {
            throw new ArgumentException($"tokenizer {field} '{relative}' is outside the model directory");
        }
        if (!System.IO.File.Exists(full))
        {
            throw new ArgumentException($"tokenizer {field} '{relative}' does not exist in the model directory");
        }
        return full;
    }

    // Library and parser failures become ArgumentException naming the file, so a bad model fails to load with a readable reason.
    private static T Load<T>(string file, Func<T> load)
    {
        try
        {
            return load();
        }
        catch (TokenizerFormatException e)
        {
            // Rethrown as the plain type the factory documents; the message is already complete.
            throw new ArgumentException(e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ArgumentException($"cannot load tokenizer file '{file}': {e.Message}", e);
        }
    }

    private static List<(string, string)> ReadMerges(string path)
    {
        var merges = new List<(string, string)>();
        foreach (var line in System.IO.File.ReadLines(path, Encoding.UTF8))
        {
            // "#version: 0.2" heads GPT-2's file; blank lines carry no merge.
            if (line.Length == 0 || (merges.Count == 0 && line.StartsWith("#version", StringComparison.Ordinal)))
            {
                continue;
            }
            var space = line.IndexOf(' ');
            if (space < 0)
            {
                throw new TokenizerFormatException($"{Path.GetFileName(path)} line '{line}' is not two tokens separated by a space");
            }
            merges.Add((line[..space], line[(space + 1)..]));
        }
        return merges;
    }

    private static int MaxTiktokenRank(string path)
    {
        var max = -1;
        foreach (var line in System.IO.File.ReadLines(path))
        {
            var space = line.IndexOf(' ');
            if (space > 0 && int.TryParse(line.AsSpan(space + 1), out var rank))
            {
                max = Math.Max(max, rank);
            }
        }
        return max;
    }

    private static int MaxId(IReadOnlyDictionary<string, int>? vocabulary, IReadOnlyDictionary<string, int>? special)
    {
        var max = -1;
        foreach (var dictionary in new[] { vocabulary, special })
        {
            if (dictionary is null)
            {
                continue;
            }
            foreach (var id in dictionary.Values)
            {
                max = Math.Max(max, id);
            }
        }
        return max;
    }
}

/// <summary>A tokenizer file that is readable but asks for something unsupported; its message is already complete.</summary>
internal sealed class TokenizerFormatException(string message) : ArgumentException(message);
