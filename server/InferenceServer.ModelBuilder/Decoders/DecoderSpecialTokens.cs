namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// The special tokens of a written decoder's tokenizer, Llama-style: <c>&lt;s&gt;</c> at the BOS id, <c>&lt;/s&gt;</c> at the
/// EOS id and <c>&lt;pad&gt;</c> at the pad id. Roles that share an id share its token (the first of BOS, EOS, pad names it).
/// </summary>
/// <param name="Bos">The beginning-of-sequence token's text.</param>
/// <param name="Eos">The end-of-sequence token's text.</param>
/// <param name="Pad">The padding token's text.</param>
/// <param name="ById">Every special token by id, ascending.</param>
public sealed record DecoderSpecialTokens(string Bos, string Eos, string Pad, IReadOnlyList<(int Id, string Text)> ById)
{
    /// <summary>Text of the BOS token when it has an id of its own.</summary>
    public const string BosText = "<s>";

    /// <summary>Text of the EOS token when it has an id of its own.</summary>
    public const string EosText = "</s>";

    /// <summary>Text of the padding token when it has an id of its own.</summary>
    public const string PadText = "<pad>";

    /// <summary>The byte tokens every byte-level BPE vocabulary holds.</summary>
    public const int ByteTokens = 256;

    /// <summary>The special tokens of <paramref name="options"/>.</summary>
    public static DecoderSpecialTokens Of(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var byId = new SortedDictionary<int, string>();
        string Name(int id, string text) => byId.TryGetValue(id, out string? existing) ? existing : byId[id] = text;
        string bos = Name(options.BosTokenId, BosText);
        string eos = Name(options.EosTokenId, EosText);
        string pad = Name(options.PadTokenId, PadText);
        return new DecoderSpecialTokens(bos, eos, pad, byId.Select(kv => (kv.Key, kv.Value)).ToArray());
    }

    /// <summary>Checks that <see cref="DecoderOptions.Vocab"/> holds the 256 byte tokens and the special tokens.</summary>
    /// <exception cref="ArgumentException">It does not.</exception>
    public static void CheckVocabulary(DecoderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var specials = Of(options);
        int needed = ByteTokens + specials.ById.Count;
        if (options.Vocab < needed)
        {
            throw new ArgumentException(
                $"vocabulary {options.Vocab} is too small for the byte-level BPE tokenizer: it needs at least {needed} ids " +
                $"({ByteTokens} byte tokens and {string.Join(", ", specials.ById.Select(s => s.Text))}); " +
                "raise --vocab, or write no tokenizer files (--no-tokenizer).");
        }
    }
}
