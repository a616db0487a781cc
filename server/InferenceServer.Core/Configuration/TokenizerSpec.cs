namespace InferenceServer.Configuration;

/// <summary>Which tokenizer a text-generation model uses and where its files are; the generation engine's tokenizer factory turns it into a tokenizer.</summary>
public sealed class TokenizerSpec
{
    /// <summary><see cref="Kind"/> of a character vocabulary given inline in <see cref="Vocabulary"/>.</summary>
    public const string Characters = "characters";

    /// <summary><see cref="Kind"/> of a GPT-2 style byte-level BPE: <see cref="VocabFile"/> (vocab.json) and <see cref="MergesFile"/> (merges.txt).</summary>
    public const string Bpe = "bpe";

    /// <summary><see cref="Kind"/> of a SentencePiece model (BPE or unigram): <see cref="File"/> is the .model file.</summary>
    public const string SentencePiece = "sentencepiece";

    /// <summary><see cref="Kind"/> of a tiktoken ranks file: <see cref="File"/> is the .tiktoken file and <see cref="Encoding"/> names its pre-tokenizer.</summary>
    public const string Tiktoken = "tiktoken";

    /// <summary><see cref="Kind"/> of a Hugging Face tokenizer.json holding a byte-level BPE model: <see cref="File"/>.</summary>
    public const string TokenizerJson = "tokenizer_json";

    /// <summary>One of <see cref="Characters"/>, <see cref="Bpe"/>, <see cref="SentencePiece"/>, <see cref="Tiktoken"/>, <see cref="TokenizerJson"/>.</summary>
    public string Kind { get; set; } = "";

    /// <summary>For <see cref="Characters"/>: the vocabulary, character i being token i.</summary>
    public string? Vocabulary { get; set; }

    /// <summary>The tokenizer file, relative to the model directory (sentencepiece: default tokenizer.model; tokenizer_json: default tokenizer.json; tiktoken: required).</summary>
    public string? File { get; set; }

    /// <summary>For <see cref="Bpe"/>: the vocabulary JSON, relative to the model directory (default vocab.json).</summary>
    public string? VocabFile { get; set; }

    /// <summary>For <see cref="Bpe"/>: the merges file, relative to the model directory (default merges.txt).</summary>
    public string? MergesFile { get; set; }

    /// <summary>The end-of-sequence token's text (e.g. "&lt;|endoftext|&gt;", or a single character for <see cref="Characters"/>).</summary>
    public string? EosToken { get; set; }

    /// <summary>The end-of-sequence token's id; when <see cref="EosToken"/> is also given they must agree.</summary>
    public int? EosTokenId { get; set; }

    /// <summary>The token to put before every prompt (SentencePiece models default to the model's own BOS).</summary>
    public string? BosToken { get; set; }

    /// <summary>False to put no BOS token before prompts even when the model defines one; null for the format's default.</summary>
    public bool? AddBos { get; set; }

    /// <summary>For <see cref="Tiktoken"/>: the encoding whose pre-tokenizer regex and special tokens apply (cl100k_base, o200k_base, p50k_base, p50k_edit, r50k_base, gpt2) or an OpenAI model name.</summary>
    public string? Encoding { get; set; }
}
