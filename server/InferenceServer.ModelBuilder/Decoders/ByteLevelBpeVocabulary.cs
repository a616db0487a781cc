using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// A GPT-2 style byte-level BPE vocabulary of an exact size, made deterministically: the special tokens at their ids
/// (<see cref="DecoderSpecialTokens"/>), the 256 byte tokens (in GPT-2's byte-to-character mapping) in the lowest free
/// ids, then merges learned from a short built-in English text (most frequent pair first, ties by ordinal order) and,
/// when the text has no more pairs to merge, merges that extend the learned tokens by one letter, until every id of the
/// vocabulary is a token.
/// </summary>
public sealed class ByteLevelBpeVocabulary
{
    /// <summary>GPT-2's pre-tokenizer split (Hugging Face ByteLevel with use_regex): merges never cross its pieces.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Letters by English frequency: what the merges after the learned ones append.</summary>
    private const string FillLetters = "etaoinshrdlucmfwypvbgkjqxz";

    /// <summary>The text the merges are learned from (written for this purpose; any text would do).</summary>
    private const string TrainingText =
        "The inference server loads a model from its repository and answers requests over HTTP and gRPC. " +
        "A language model reads the prompt, one token at a time, and writes the next token; the server keeps the keys and " +
        "values of every layer in a cache, so that each new token attends to the ones before it without computing them again. " +
        "When many people ask at the same time, their sequences are stepped together as one batch, and a sequence that has " +
        "finished leaves the batch while another one takes its place. The tokenizer turns the text into numbers and the " +
        "numbers back into text: these are the words of the model, and there are as many of them as the vocabulary holds. " +
        "Every sentence the model writes is made of such pieces, the common ones whole and the rare ones from their letters. " +
        "It is a small model with random weights, so what it says means nothing, but the shape of it is the shape of the " +
        "real thing, and the tests that run it check that the server does with it what it would do with any other model. " +
        "Numbers such as 2048, 4096 and 128 are written with digits; names such as Llama, Qwen and Mistral with capitals.";

    private ByteLevelBpeVocabulary(IReadOnlyList<string> tokens, IReadOnlyList<string> merges)
    {
        Tokens = tokens;
        Merges = merges;
    }

    /// <summary>Every token by id (<c>Tokens[id]</c>), special tokens included; as many as the vocabulary's size.</summary>
    public IReadOnlyList<string> Tokens { get; }

    /// <summary>The merges in rank order, each "left right" in byte-level characters.</summary>
    public IReadOnlyList<string> Merges { get; }

    /// <summary>GPT-2's printable character for each byte (bytes that print as themselves keep their character).</summary>
    public static IReadOnlyList<char> ByteCharacters { get; } = MakeByteCharacters();

    /// <summary>Builds the vocabulary of <paramref name="options"/>: <see cref="DecoderOptions.Vocab"/> tokens.</summary>
    /// <exception cref="ArgumentException">The vocabulary cannot hold the 256 byte tokens and the special tokens.</exception>
    public static ByteLevelBpeVocabulary Create(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var specials = DecoderSpecialTokens.Of(options);
        DecoderSpecialTokens.CheckVocabulary(options);
        var tokens = new string?[options.Vocab];
        foreach (var (id, text) in specials.ById)
        {
            tokens[id] = text;
        }

        var known = new HashSet<string>(StringComparer.Ordinal);
        var ordered = new List<string>(options.Vocab - specials.ById.Count);
        foreach (char c in ByteCharacters)
        {
            ordered.Add(c.ToString());
            known.Add(c.ToString());
        }

        int wanted = options.Vocab - specials.ById.Count;
        var merges = new List<string>();
        var learned = Learn(wanted, ordered, known, merges);
        Fill(wanted, learned, ordered, known, merges);

        int next = 0;
        foreach (string token in ordered)
        {
            while (tokens[next] is not null)
            {
                next++;
            }

            tokens[next] = token;
        }

        return new ByteLevelBpeVocabulary(tokens.Select(t => t!).ToArray(), merges);
    }

    /// <summary>Standard BPE training on <see cref="TrainingText"/>; returns the tokens it made, in order.</summary>
    private static List<string> Learn(int wanted, List<string> ordered, HashSet<string> known, List<string> merges)
    {
        var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
        foreach (Match piece in Regex.Matches(TrainingText, Gpt2Pattern, RegexOptions.CultureInvariant))
        {
            string word = ToByteCharacters(piece.Value);
            counts[word] = counts.GetValueOrDefault(word) + 1;
        }

        var words = counts.Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();
        var learned = new List<string>();
        while (ordered.Count < wanted)
        {
            var pairs = new Dictionary<(string Left, string Right), int>();
            foreach (var (symbols, count) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var pair = (symbols[i], symbols[i + 1]);
                    pairs[pair] = pairs.GetValueOrDefault(pair) + count;
                }
            }

            var best = pairs
                .OrderByDescending(p => p.Value)
                .ThenBy(p => p.Key.Left, StringComparer.Ordinal)
                .ThenBy(p => p.Key.Right, StringComparer.Ordinal)
                .FirstOrDefault();
            if (best.Value < 2)
            {
                break;
            }

            var (left, right) = best.Key;
            string merged = left + right;
            merges.Add(left + " " + right);
            if (known.Add(merged))
            {
                ordered.Add(merged);
                learned.Add(merged);
            }

            foreach (var (symbols, _) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }

        return learned;
    }

    /// <summary>Extends tokens (the learned ones, then a space and each letter) by one letter, breadth first, until the vocabulary is full.</summary>
    private static void Fill(int wanted, List<string> learned, List<string> ordered, HashSet<string> known, List<string> merges)
    {
        var stems = new List<string>(learned) { ByteCharacters[' '].ToString() };
        stems.AddRange(FillLetters.Select(c => c.ToString()));
        for (int i = 0; ordered.Count < wanted; i++)
        {
            string stem = stems[i];
            foreach (char letter in FillLetters)
            {
                if (ordered.Count == wanted)
                {
                    return;
                }

                string token = stem + letter;
                if (known.Add(token))
                {
                    merges.Add(stem + " " + letter);
                    ordered.Add(token);
                    stems.Add(token);
                }
            }
        }
    }

    /// <summary>The text's UTF-8 bytes as GPT-2's byte characters.</summary>
    public static string ToByteCharacters(string text)
    {
        var builder = new StringBuilder();
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            builder.Append(ByteCharacters[b]);
        }

        return builder.ToString();
    }

    private static char[] MakeByteCharacters()
    {
        var map = new char[256];
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool prints = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = prints ? (char)b : (char)(256 + extra++);
        }

        return map;
    }
}
