using System.Text.Json;
using InferenceServer.Configuration;
using InferenceServer.Generation;
using InferenceServer.Generation.Chat;
using InferenceServer.Tensors;

namespace InferenceServer.Http;

/// <summary>
/// The resolved generation settings of a generative model in <c>GET /v2/models/{m}/config</c> (Triton's configuration has
/// no field for them): what the tokenizer and context are, and for a KV-cache decoder what was read from its graph and
/// how each instance's cache is laid out, and which chat template renders conversations. <c>provenance</c> beside it says
/// where each value came from.
/// </summary>
internal static class GenerationConfigJson
{
    public static void Write(Utf8JsonWriter w, GenerationModel model)
    {
        var generation = model.Settings;
        w.WriteStartObject("generation");
        w.WriteString("tokenizer", generation.Tokenizer.Kind);
        if (generation.Tokenizer.File is { } file)
        {
            w.WriteString("tokenizer_file", file);
        }
        if (generation.MaxModelLen is { } maxModelLen)
        {
            w.WriteNumber("max_model_len", maxModelLen);
        }
        else
        {
            w.WriteNumber("context_window", generation.ContextWindow);
        }
        w.WriteNumber("max_running_sequences", generation.MaxRunningSequences);
        w.WriteNumber("max_waiting_sequences", generation.MaxWaitingSequences);
        w.WriteNumber("default_max_tokens", generation.DefaultMaxTokens);
        w.WriteNumber("max_tokens_limit", generation.MaxTokensLimit);
        w.WriteStartArray("stop_token_ids");
        foreach (var id in generation.StopTokenIds)
        {
            w.WriteNumberValue(id);
        }
        w.WriteEndArray();
        w.WriteString("logits", generation.LogitsType.ConfigName());
        // Which chat template renders conversations: the model's own Jinja template(s) and where they were found, or format strings.
        w.WriteStartObject("chat_template");
        w.WriteString("kind", model.ChatTemplate.Kind);
        if (model.ChatTemplate is JinjaChatTemplate jinja)
        {
            w.WriteString("source", jinja.Source);
            w.WriteStartArray("names");
            foreach (var name in jinja.Names)
            {
                w.WriteStringValue(name);
            }
            w.WriteEndArray();
        }
        w.WriteEndObject();
        if (generation.KvCache is { } kv)
        {
            var plan = model.KvCache!;
            w.WriteStartObject("kv_cache");
            w.WriteNumber("layers", kv.Layers);
            w.WriteNumber("kv_heads", kv.KvHeads);
            w.WriteNumber("head_size", kv.HeadSize);
            w.WriteString("data_type", kv.CacheType.ConfigName());
            w.WriteBoolean("position_ids", kv.HasPositionIds);
            w.WriteBoolean("use_cache_branch", kv.HasUseCacheBranch);
            w.WriteBoolean("lengths_from_mask", kv.LengthsFromMask);
            w.WriteNumber("bytes_per_token", kv.BytesPerToken);
            w.WriteNumber("kv_cache_bytes", generation.KvCacheBytes);
            w.WriteBoolean("past_present_share_buffer", plan.Copies == 1);
            w.WriteNumber("allocated_bytes_per_instance", plan.Bytes);
            w.WriteNumber("regions", plan.Regions);
            w.WriteNumber("region_tokens", plan.RegionTokens);
            w.WriteNumber("prefill_tokens", plan.PrefillTokens);
            w.WriteNumber("max_sequence_tokens", plan.MaxSequenceTokens);
            w.WriteNumber("max_num_batched_tokens", generation.MaxNumBatchedTokens);
            w.WriteBoolean("enable_prefix_caching", generation.EnablePrefixCaching);
            w.WriteNumber("prefix_cache_bytes", generation.EnablePrefixCaching ? generation.PrefixCacheBytes : 0);
            w.WriteNumber("prefix_block_tokens", PrefixCache.BlockTokens);
            w.WriteEndObject();
        }
        w.WriteEndObject();
    }
}
