namespace InferenceServer.Generation.Tokenization;

/// <summary>A tokenizer.json post-processor: puts the special tokens around an encoded sequence (applied only with add_special_tokens).</summary>
internal abstract class PostProcessor
{
    /// <summary>The ids of a single sequence <paramref name="ids"/> with the special tokens added.</summary>
    public abstract List<int> Process(List<int> ids);
}

/// <summary>One element of a template: a special token's ids, or the sequence itself (<c>$A</c>/<c>$B</c>).</summary>
internal readonly record struct TemplatePiece(int[]? SpecialIds, string? Sequence);

/// <summary>TemplateProcessing: the single template ("[CLS] $A [SEP]"); the pair template is parsed but prompts never use it.</summary>
internal sealed class TemplateProcessor(IReadOnlyList<TemplatePiece> single, IReadOnlyList<TemplatePiece> pair) : PostProcessor
{
    public IReadOnlyList<TemplatePiece> Pair => pair;

    public override List<int> Process(List<int> ids)
    {
        var result = new List<int>(ids.Count + 4);
        foreach (var piece in single)
        {
            if (piece.SpecialIds is { } special)
            {
                result.AddRange(special);
            }
            else
            {
                result.AddRange(ids);
            }
        }
        return result;
    }
}

/// <summary>BertProcessing ([CLS] A [SEP]) and RobertaProcessing (&lt;s&gt; A &lt;/s&gt;): the cls id, the sequence, the sep id.</summary>
internal sealed class ClsSepProcessor(int cls, int sep) : PostProcessor
{
    public override List<int> Process(List<int> ids)
    {
        var result = new List<int>(ids.Count + 2) { cls };
        result.AddRange(ids);
        result.Add(sep);
        return result;
    }
}

/// <summary>A post-processor that leaves the ids alone (ByteLevel only adjusts offsets).</summary>
internal sealed class NoOpProcessor : PostProcessor
{
    public override List<int> Process(List<int> ids) => ids;
}

/// <summary>Post-processors applied in order.</summary>
internal sealed class SequenceProcessor(IReadOnlyList<PostProcessor> steps) : PostProcessor
{
    public override List<int> Process(List<int> ids)
    {
        foreach (var step in steps)
        {
            ids = step.Process(ids);
        }
        return ids;
    }
}
