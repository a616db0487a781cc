using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Generation.Tokenization;

/// <summary>
/// A tokenizer.json decoder. As in Rust tokenizers, each decoder maps the list of token strings to a new list
/// (decode_chain) and the decoded text is the final list joined without separator.
/// </summary>
internal abstract class Decoder
{
    public abstract List<string> DecodeChain(List<string> tokens);
}

/// <summary>Byte-level: all tokens' characters back to bytes, read as UTF-8 (invalid sequences become U+FFFD).</summary>
internal sealed class ByteLevelDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
        {
            ByteLevelAlphabet.AppendBytes(token, bytes);
        }
        return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }
}

/// <summary>Metaspace: the replacement character back to spaces; the first token drops its replacement characters unless the scheme is never.</summary>
internal sealed class MetaspaceDecoder(char replacement, MetaspacePrependScheme scheme) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            // As Rust: in the first token every replacement character goes (not only a leading one) unless the scheme is never.
            var token = i == 0 && scheme != MetaspacePrependScheme.Never
                ? tokens[i].Replace(replacement.ToString(), "", StringComparison.Ordinal)
                : tokens[i].Replace(replacement, ' ');
            result.Add(token);
        }
        return result;
    }
}

/// <summary>WordPiece: tokens after the first lose the continuing prefix or get a leading space; cleanup tidies spaces before punctuation.</summary>
internal sealed class WordPieceDecoder(string prefix, bool cleanup) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            var token = tokens[i];
            if (i != 0)
            {
                if (prefix.Length > 0 && token.StartsWith(prefix, StringComparison.Ordinal))
                {
                    var at = token.IndexOf(prefix, StringComparison.Ordinal);
                    token = token.Remove(at, prefix.Length);
                }
                else if (prefix.Length == 0)
                {
                    // Rust's starts_with("") is true and replacen("", "", 1) removes nothing.
                }
                else
                {
                    token = " " + token;
                }
            }
            if (cleanup)
            {
                token = Cleanup(token);
            }
            result.Add(token);
        }
        return result;
    }

    /// <summary>The BERT/WordPiece clean-up of tokenization spaces.</summary>
    public static string Cleanup(string text) => text
        .Replace(" .", ".", StringComparison.Ordinal).Replace(" ?", "?", StringComparison.Ordinal).Replace(" !", "!", StringComparison.Ordinal)
        .Replace(" ,", ",", StringComparison.Ordinal).Replace(" ' ", "'", StringComparison.Ordinal).Replace(" n't", "n't", StringComparison.Ordinal)
        .Replace(" 'm", "'m", StringComparison.Ordinal).Replace(" do not", " don't", StringComparison.Ordinal).Replace(" 's", "'s", StringComparison.Ordinal)
        .Replace(" 've", "'ve", StringComparison.Ordinal).Replace(" 're", "'re", StringComparison.Ordinal);
}

/// <summary>BPEDecoder: the end-of-word suffix becomes a space, except in the last token where it goes.</summary>
internal sealed class BpeDecoder(string suffix) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (var i = 0; i < tokens.Count; i++)
        {
            result.Add(suffix.Length == 0 ? tokens[i] : tokens[i].Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal));
        }
        return result;
    }
}

/// <summary>ByteFallback: runs of &lt;0xNN&gt; tokens become their UTF-8 text, or one U+FFFD per byte when that is not valid UTF-8.</summary>
internal sealed class ByteFallbackDecoder : Decoder
{
    private static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
                && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(token);
        }
        Flush(pending, result);
        return result;
    }

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0)
        {
            return;
        }
        try
        {
            result.Add(Strict.GetString(pending.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            for (var i = 0; i < pending.Count; i++)
            {
                result.Add("\uFFFD");
            }
        }
        pending.Clear();
    }
}

/// <summary>Fuse: all tokens joined into one.</summary>
internal sealed class FuseDecoder : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Strip: removes up to <c>start</c> leading and <c>stop</c> trailing copies of <c>content</c> from each token.</summary>
internal sealed class StripDecoder(int content, int start, int stop) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        foreach (var token in tokens)
        {
            var runes = token.EnumerateRunes().ToArray();
            var startCut = 0;
            for (var i = 0; i < Math.Min(start, runes.Length); i++)
            {
                if (runes[i].Value != content)
                {
                    break;
                }
                startCut = i + 1;
            }
            var stopCut = runes.Length;
            for (var i = 0; i < stop && runes.Length - i - 1 >= 0; i++)
            {
                var index = runes.Length - i - 1;
                if (runes[index].Value != content)
                {
                    break;
                }
                stopCut = index;
            }
            var builder = new StringBuilder();
            for (var i = startCut; i < stopCut; i++)
            {
                builder.Append(runes[i].ToString());
            }
            result.Add(builder.ToString());
        }
        return result;
    }
}

/// <summary>Replace: a literal or regex pattern replaced with <c>content</c> in each token.</summary>
internal sealed class ReplaceDecoder(string? literal, Regex? regex, string content) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens) => tokens.ConvertAll(t => ReplaceNormalizer.Apply(t, literal, regex, content));
}

/// <summary>CTC: collapses repeated tokens, drops the pad token, turns the word delimiter into a space.</summary>
internal sealed class CtcDecoder(string padToken, string wordDelimiter, bool cleanup) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>();
        string? previous = null;
        foreach (var token in tokens)
        {
            if (token == previous)
            {
                continue;
            }
            previous = token;
            if (token == padToken)
            {
                continue;
            }
            var text = token.Replace(wordDelimiter, " ", StringComparison.Ordinal);
            result.Add(cleanup ? WordPieceDecoder.Cleanup(text).Replace(wordDelimiter, " ", StringComparison.Ordinal) : text);
        }
        return result;
    }
}

/// <summary>Decoders applied in order.</summary>
internal sealed class SequenceDecoder(IReadOnlyList<Decoder> steps) : Decoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        foreach (var step in steps)
        {
            tokens = step.DecodeChain(tokens);
        }
        return tokens;
    }
}
