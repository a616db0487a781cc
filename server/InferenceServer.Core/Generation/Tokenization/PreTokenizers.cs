using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Generation.Tokenization;

/// <summary>A tokenizer.json pre-tokenizer: cuts each normalized piece into the words the model tokenizes one by one.</summary>
internal abstract class PreTokenizer
{
    /// <summary>Appends the pieces <paramref name="piece"/> becomes (empty ones are left out).</summary>
    public abstract void Split(Piece piece, List<Piece> output);
}

/// <summary>Byte-level: optional leading space, optional GPT-2 regex split, then each UTF-8 byte as its mapped character.</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    /// <summary>GPT-2's pre-tokenizer regex, as Rust's ByteLevel uses with use_regex.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private static readonly Regex Gpt2 = TextSplits.Compile(Gpt2Pattern, "ByteLevel");

    public override void Split(Piece piece, List<Piece> output)
    {
        if (addPrefixSpace && !piece.Text.StartsWith(' '))
        {
            piece = piece with { Text = " " + piece.Text };
        }
        var start = output.Count;
        if (useRegex)
        {
            TextSplits.Split(piece, Gpt2, SplitBehavior.Isolated, invert: false, output);
        }
        else if (piece.Text.Length > 0)
        {
            output.Add(piece);
        }
        for (var i = start; i < output.Count; i++)
        {
            output[i] = output[i] with { Text = ByteLevelAlphabet.Encode(output[i].Text) };
        }
    }
}

/// <summary>Split by a literal or regex pattern with a delimiter behaviour, optionally inverted.</summary>
internal sealed class SplitPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output) => TextSplits.Split(piece, pattern, behavior, invert, output);
}

/// <summary>SentencePiece-style: spaces become the replacement character (▁), which is prepended per the scheme, and words start at it.</summary>
internal sealed class MetaspacePreTokenizer(char replacement, MetaspacePrependScheme scheme, bool split) : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output)
    {
        var text = piece.Text.Replace(' ', replacement);
        var prepend = scheme == MetaspacePrependScheme.Always || (scheme == MetaspacePrependScheme.First && piece.AtStart);
        if (prepend && !text.StartsWith(replacement))
        {
            text = replacement + text;
        }
        var replaced = piece with { Text = text };
        if (split)
        {
            TextSplits.Split(replaced, rune => rune.Value == replacement, SplitBehavior.MergedWithNext, output);
        }
        else if (text.Length > 0)
        {
            output.Add(replaced);
        }
    }
}

/// <summary>When Metaspace puts the replacement character in front of a piece.</summary>
internal enum MetaspacePrependScheme
{
    Always,
    First,
    Never,
}

/// <summary>Words (\w+, which in Rust's Unicode regexes also holds marks and the zero-width joiners) and runs of other non-space characters; whitespace is dropped.</summary>
internal sealed class WhitespacePreTokenizer : PreTokenizer
{
    private static readonly Regex Words = TextSplits.Compile(@"[\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\u200C\u200D\u24B6-\u24E9]+|[^\p{L}\p{Nl}\p{M}\p{Nd}\p{Pc}\u200C\u200D\u24B6-\u24E9\s]+", "Whitespace");

    public override void Split(Piece piece, List<Piece> output) => TextSplits.Split(piece, Words, SplitBehavior.Removed, invert: true, output);
}

/// <summary>Splits on whitespace, dropping it.</summary>
internal sealed class WhitespaceSplitPreTokenizer : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output) => TextSplits.Split(piece, TextSplits.IsWhiteSpace, SplitBehavior.Removed, output);
}

/// <summary>Splits on a single character, dropping it.</summary>
internal sealed class CharDelimiterPreTokenizer(int delimiter) : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output) => TextSplits.Split(piece, rune => rune.Value == delimiter, SplitBehavior.Removed, output);
}

/// <summary>BERT: whitespace is dropped and each punctuation character is its own piece.</summary>
internal sealed class BertPreTokenizer : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output)
    {
        var words = new List<Piece>();
        TextSplits.Split(piece, TextSplits.IsWhiteSpace, SplitBehavior.Removed, words);
        foreach (var word in words)
        {
            TextSplits.Split(word, TextSplits.IsPunctuation, SplitBehavior.Isolated, output);
        }
    }
}

/// <summary>Splits at punctuation characters with the given behaviour (Isolated by default).</summary>
internal sealed class PunctuationPreTokenizer(SplitBehavior behavior) : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output) => TextSplits.Split(piece, TextSplits.IsPunctuation, behavior, output);
}

/// <summary>Splits digits from the rest: each digit alone, or runs of digits.</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output) =>
        TextSplits.Split(piece, TextSplits.IsNumeric, individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, output);
}

/// <summary>Pre-tokenizers applied in order, each to every piece the previous one made.</summary>
internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizer> steps) : PreTokenizer
{
    public override void Split(Piece piece, List<Piece> output)
    {
        var current = new List<Piece> { piece };
        var next = new List<Piece>();
        foreach (var step in steps)
        {
            next.Clear();
            foreach (var p in current)
            {
                step.Split(p, next);
            }
            (current, next) = (next, current);
        }
        output.AddRange(current);
    }
}
