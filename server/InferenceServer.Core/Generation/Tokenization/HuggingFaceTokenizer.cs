using InferenceServer.Inference;

namespace InferenceServer.Generation.Tokenization;

/// <summary>
/// A Hugging Face tokenizer.json pipeline, as the Rust <c>tokenizers</c> library runs it: added tokens are cut out of the
/// text, the rest is normalized, pre-tokenized into words and tokenized by the model (BPE, WordPiece, WordLevel, Unigram);
/// the post-processor adds the special tokens when asked; decoding maps ids to token strings and runs the decoder chain.
/// Immutable apart from thread-safe word caches, so one instance serves every request of a model.
/// </summary>
public sealed class HuggingFaceTokenizer : ITokenizer
{
    private readonly TokenizerModel _model;
    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly PostProcessor? _postProcessor;
    private readonly Decoder? _decoder;
    private readonly AddedVocabulary _added;
    private readonly Func<IEnumerable<int>, string> _streamDecode;
    private readonly int _anchor = -1;
    // With special tokens: drop the template's leading BOS (add_bos false) and/or put a BOS first the template lacks.
    private bool _dropTemplateBos;
    private int? _prependBos;

    internal HuggingFaceTokenizer(TokenizerModel model, Normalizer? normalizer, PreTokenizer? preTokenizer, PostProcessor? postProcessor,
        Decoder? decoder, AddedVocabulary added)
    {
        _model = model;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _postProcessor = postProcessor;
        _decoder = decoder;
        _added = added;
        var max = model.MaxId;
        foreach (var token in added.Tokens)
        {
            max = Math.Max(max, token.Id);
        }
        VocabularySize = max + 1;
        _streamDecode = ids => DecodeTokens(ids, skipSpecialTokens: true);
        foreach (var candidate in new[] { "a", "A", "0", "." })
        {
            // A whole word: with an end-of-word suffix "a</w>", else "a" (which Metaspace, WordPiece and ByteLevel read as plain text).
            foreach (var form in model.WholeWordForms(candidate))
            {
                if (_anchor < 0 && model.TokenToId(form) is { } id && _added.ById(id) is null && DecodeTokens([id], false) == candidate)
                {
                    _anchor = id;
                }
            }
        }
        if (postProcessor is not null)
        {
            // The template's first element when it is a special token (e.g. Llama's <|begin_of_text|>, BERT's [CLS]).
            var probe = postProcessor.Process([-1]);
            if (probe.Count > 0 && probe[0] != -1)
            {
                TemplateLeadingId = probe[0];
            }
        }
    }

    /// <inheritdoc/>
    public int VocabularySize { get; }

    /// <inheritdoc/>
    public int? EosTokenId { get; private set; }

    /// <inheritdoc/>
    public int? BosTokenId { get; private set; }

    /// <summary>The special token the post-processor puts first, or null (no post-processor, or its template starts with the text).</summary>
    public int? TemplateLeadingId { get; }

    /// <summary>Whether the file has a post-processor (which then decides the special tokens of a prompt).</summary>
    public bool HasPostProcessor => _postProcessor is not null;

    /// <summary>
    /// Sets the special tokens the model configuration resolved: <paramref name="bos"/> null with <paramref name="addBos"/> false
    /// drops <paramref name="templateBos"/> from what the template adds; a BOS the template does not put first is prepended.
    /// </summary>
    internal void SetSpecialTokens(int? eos, int? bos, bool addBos, int? templateBos)
    {
        EosTokenId = eos;
        BosTokenId = addBos ? bos : null;
        _dropTemplateBos = !addBos && templateBos is not null && templateBos == TemplateLeadingId;
        _prependBos = addBos && bos is { } b && b != TemplateLeadingId ? b : null;
    }

    /// <summary>The id of the token whose content is <paramref name="token"/>: an added token, a vocabulary entry, or text that encodes to one token; else null.</summary>
    public int? FindTokenId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_added.ByContent(token) is { } added)
        {
            return added.Id;
        }
        if (_model.TokenToId(token) is { } id)
        {
            return id;
        }
        var ids = new List<int>();
        try
        {
            Encode(token, ids);
        }
        catch (InferenceException)
        {
            return null;
        }
        return ids.Count == 1 && Decode(ids.ToArray()) == token ? ids[0] : null;
    }

    /// <summary>Whether <paramref name="id"/> is an added token marked special (dropped by skip_special_tokens).</summary>
    public bool IsSpecial(int id) => _added.ById(id) is { Special: true };

    /// <inheritdoc/>
    public void Encode(string text, List<int> ids)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(ids);
        var pieces = new List<(Piece Piece, int Id)>();
        _added.ExtractAndNormalize(text, _normalizer, pieces);
        var words = new List<Piece>();
        foreach (var (piece, id) in pieces)
        {
            if (id >= 0)
            {
                ids.Add(id);
                continue;
            }
            if (_preTokenizer is null)
            {
                _model.Tokenize(piece.Text, ids);
                continue;
            }
            words.Clear();
            _preTokenizer.Split(piece, words);
            foreach (var word in words)
            {
                if (word.Text.Length > 0)
                {
                    _model.Tokenize(word.Text, ids);
                }
            }
        }
    }

    /// <inheritdoc/>
    public void Encode(string text, List<int> ids, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(ids);
        if (!addSpecialTokens)
        {
            Encode(text, ids);
            return;
        }
        var sequence = new List<int>();
        Encode(text, sequence);
        var processed = _postProcessor?.Process(sequence) ?? sequence;
        if (_prependBos is { } bos)
        {
            ids.Add(bos);
        }
        var skip = _dropTemplateBos && processed.Count > 0 ? 1 : 0;
        for (var i = skip; i < processed.Count; i++)
        {
            ids.Add(processed[i]);
        }
    }

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids) => Decode(ids, skipSpecialTokens: false);

    /// <inheritdoc/>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        foreach (var id in ids)
        {
            CheckId(id);
        }
        return DecodeTokens(ids.ToArray(), skipSpecialTokens);
    }

    /// <inheritdoc/>
    public string TokenString(int id)
    {
        CheckId(id);
        return _added.ById(id)?.Content ?? _model.IdToToken(id) ?? "";
    }

    /// <inheritdoc/>
    public IncrementalDecoder CreateDecoder() => new TailDecoder(_streamDecode, VocabularySize, default, _anchor);

    /// <inheritdoc/>
    public IncrementalDecoder CreateDecoder(ReadOnlySpan<int> context)
    {
        // The stream leaves special tokens out, so the context does too: a prompt of special tokens only (a lone BOS) is
        // no text to continue. The tail the decoder keeps must not start inside a character's <0xNN> byte tokens, whose
        // run ByteFallback would then read as invalid as a whole.
        var kept = new List<int>(context.Length);
        foreach (var id in context)
        {
            CheckId(id);
            if (!IsSpecial(id))
            {
                kept.Add(id);
            }
        }
        var start = Math.Max(0, kept.Count - TailDecoder.ContextTokens);
        while (start < kept.Count - 1 && IsContinuationByteToken(kept[start]))
        {
            start++;
        }
        return new TailDecoder(_streamDecode, VocabularySize, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(kept)[start..], _anchor);
    }

    private bool IsContinuationByteToken(int id) =>
        _added.ById(id) is null && _model.IdToToken(id) is { Length: 6 } token && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
        && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b) && b is >= 0x80 and <= 0xBF;

    private void CheckId(int id)
    {
        if ((uint)id >= (uint)VocabularySize)
        {
            throw InferenceException.InvalidArgument($"token id {id} is outside the vocabulary (0..{VocabularySize - 1})");
        }
    }

    // Rust's Tokenizer::decode: ids to token strings (added tokens first), special ones left out when asked, then the decoder chain.
    private string DecodeTokens(IEnumerable<int> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>();
        foreach (var id in ids)
        {
            string? token;
            if (_added.ById(id) is { } added)
            {
                if (skipSpecialTokens && added.Special)
                {
                    continue;
                }
                token = added.Content;
            }
            else
            {
                token = _model.IdToToken(id);
                if (token is null || (skipSpecialTokens && _added.IsSpecial(token)))
                {
                    continue;
                }
            }
            tokens.Add(token);
        }
        if (_decoder is null)
        {
            return string.Join(' ', tokens);
        }
        return string.Concat(_decoder.DecodeChain(tokens));
    }
}
