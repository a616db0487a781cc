using System.Globalization;
using InferenceServer.Configuration;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>
/// How one engine instance's KV-cache budget (<see cref="GenerationSettings.KvCacheBytes"/>) is laid out, fixed when the
/// model loads. Every run reads the past from one half of a region and writes the present (past plus new tokens) into
/// the other, so a region of <c>T</c> tokens takes <c>2·T·bytes-per-token</c> — except for a GroupQueryAttention graph
/// (<see cref="KvCacheLayout.LengthsFromMask"/>), whose past and present are one shared buffer: <c>T·bytes-per-token</c>.
/// <list type="bullet">
/// <item>A model with <c>position_ids</c> has one <b>batch region</b> of <see cref="RegionTokens"/> tokens, holding every
/// running sequence as one left-padded <c>[rows, length]</c> rectangle, so rows × the longest row must fit (the newest
/// row is preempted when the next step's would not); and a
/// <b>prefill region</b> of <see cref="PrefillTokens"/> tokens where a joining sequence's prompt is computed before it
/// is copied into the batch (none when only one sequence runs at a time).</item>
/// <item>A model whose attention takes each row's length from the mask (<see cref="KvCacheLayout.LengthsFromMask"/>:
/// onnxruntime-genai's GroupQueryAttention) is laid out the same way, but its rectangle is right-padded (each row's
/// tokens first) at a row stride that grows with the longest row, bound as both the past input and the present output
/// (the kernel appends in place), so it takes one copy of memory.</item>
/// <item>Any other model without <c>position_ids</c> (the older merged export) counts positions from the past's length, so its
/// rows cannot be padded: it has <see cref="Regions"/> = max_running_sequences regions of one sequence each.</item>
/// </list>
/// </summary>
public sealed record KvCachePlan
{
    /// <summary>Prompt tokens computed per engine run while a sequence joins (the logits buffer holds this many positions).</summary>
    public const int PrefillPiece = 256;

    /// <summary>The layout the plan is for.</summary>
    public required KvCacheLayout Layout { get; init; }

    /// <summary>Regions: 1 (a batch region), or max_running_sequences for a model that cannot be padded.</summary>
    public required int Regions { get; init; }

    /// <summary>Most sequences one region holds.</summary>
    public required int RowsPerRegion { get; init; }

    /// <summary>Tokens one region's rectangle holds (rows × padded length).</summary>
    public required int RegionTokens { get; init; }

    /// <summary>Tokens of the prefill region (0: none).</summary>
    public required int PrefillTokens { get; init; }

    /// <summary>The longest sequence (prompt + max_tokens) that can ever be given memory.</summary>
    public int MaxSequenceTokens { get; init; }

    /// <summary>Copies of the cache a run needs: 1 when past and present share one buffer (GroupQueryAttention), else 2.</summary>
    public int Copies => Layout.LengthsFromMask ? 1 : 2;

    /// <summary>Bytes the plan allocates.</summary>
    public long Bytes => Copies * ((long)Regions * RegionTokens + PrefillTokens) * Layout.BytesPerToken;

    /// <summary>
    /// Lays out <paramref name="settings"/>' budget; throws <see cref="ModelConfigException"/> when it cannot hold even a
    /// short sequence. Memory beyond what max_running_sequences sequences of max_model_len tokens need is not taken.
    /// </summary>
    public static KvCachePlan Create(GenerationSettings settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var layout = settings.KvCache ?? throw new ArgumentException("the settings are not a KV-cache decoder's", nameof(settings));
        var maxLen = settings.MaxModelLen ?? GenerationSettings.DefaultMaxModelLen;
        var running = settings.MaxRunningSequences;
        var perToken = layout.BytesPerToken;
        var copies = layout.LengthsFromMask ? 1 : 2;
        var budgetTokens = settings.KvCacheBytes / perToken;
        int regions, rows, regionTokens, prefill;
        if (layout.HasPositionIds || layout.LengthsFromMask)
        {
            regions = 1;
            rows = running;
            var wanted = (long)running * maxLen;
            if (running == 1)
            {
                regionTokens = (int)Math.Min(wanted, budgetTokens / copies);
                prefill = 0;
            }
            else if (budgetTokens / copies >= 2L * maxLen)
            {
                regionTokens = (int)Math.Min(Math.Min(wanted, budgetTokens / copies - maxLen), int.MaxValue / 2);
                prefill = maxLen;
            }
            else
            {
                regionTokens = (int)(budgetTokens / (2 * copies));
                prefill = regionTokens;
            }
        }
        else
        {
            regions = running;
            rows = 1;
            regionTokens = (int)Math.Min(maxLen, budgetTokens / copies / running);
            prefill = 0;
        }
        var longest = Math.Min(maxLen, prefill > 0 ? Math.Min(regionTokens, prefill) : regionTokens);
        if (longest < 2)
        {
            throw new ModelConfigException(string.Create(CultureInfo.InvariantCulture,
                $"generation.kv_cache_bytes {settings.KvCacheBytes} is too small: a token takes {perToken} bytes of cache ({layout.Layers} layers x key and value x {layout.KvHeads} heads x {layout.HeadSize} x {layout.CacheType.ConfigName()}){(copies == 2 ? ", twice over (a run's input and output)" : "")}, so it holds no sequence of even 2 tokens"));
        }
        var largestRegion = (long)regionTokens * layout.KvHeads * layout.HeadSize * layout.CacheType.ElementSize();
        if (largestRegion > int.MaxValue)
        {
            throw new ModelConfigException(string.Create(CultureInfo.InvariantCulture,
                $"generation.kv_cache_bytes {settings.KvCacheBytes} makes a layer's cache {largestRegion} bytes, over the 2 GiB a buffer can hold; lower kv_cache_bytes, max_running_sequences or max_model_len"));
        }
        return new KvCachePlan
        {
            Layout = layout,
            Regions = regions,
            RowsPerRegion = rows,
            RegionTokens = regionTokens,
            PrefillTokens = prefill,
            MaxSequenceTokens = longest,
        };
    }
}
