using InferenceServer.Configuration;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>
/// The keys and values of prompts already read, kept in blocks of <see cref="BlockTokens"/> tokens so that a prompt
/// starting with the same tokens (a shared system prompt, the earlier turns of a conversation) copies them instead of
/// computing them again (vLLM's automatic prefix caching). A block is found by a hash of every token up to its end and
/// checked exactly: its own tokens, and its parent block (the one before it, by slot and the slot's version), so a hash
/// collision or an evicted parent never gives a wrong cache. When the budget is full, the least recently used block
/// is dropped (a parent is touched after its children, so children go first). Memory is taken block by block as
/// prefixes are stored, up to the budget, and kept for reuse. One engine instance's decoder owns it (one thread).
/// </summary>
public sealed class PrefixCache
{
    /// <summary>Tokens per block: only whole blocks are cached (vLLM's default block size).</summary>
    public const int BlockTokens = 16;

    private const int None = -1;
    private readonly KvCacheLayout _layout;
    private readonly int _blockBytes;
    private readonly int _headBytes;
    private readonly byte[]?[] _data;
    private readonly int[] _tokens;
    private readonly ulong[] _hash;
    private readonly int[] _parent;
    private readonly int[] _parentVersion;
    private readonly int[] _version;
    private readonly int[] _older;
    private readonly int[] _newer;
    private readonly Dictionary<ulong, int> _index;
    private int _newest = None;
    private int _oldest = None;
    private int _used;

    /// <summary>A cache of at most <paramref name="bytes"/> bytes of blocks for <paramref name="layout"/>'s graph.</summary>
    internal PrefixCache(KvCacheLayout layout, long bytes)
    {
        _layout = layout;
        _headBytes = BlockTokens * layout.HeadSize * layout.CacheType.ElementSize();
        _blockBytes = checked(layout.Layers * 2 * layout.KvHeads * _headBytes);
        var blocks = (int)Math.Min(bytes / _blockBytes, 1 << 24);
        Capacity = blocks;
        _data = new byte[blocks][];
        _tokens = new int[blocks * BlockTokens];
        _hash = new ulong[blocks];
        _parent = new int[blocks];
        _parentVersion = new int[blocks];
        _version = new int[blocks];
        _older = new int[blocks];
        _newer = new int[blocks];
        _index = new Dictionary<ulong, int>(Math.Min(blocks, 1 << 16));
    }

    /// <summary>Most blocks the budget holds.</summary>
    public int Capacity { get; }

    /// <summary>
    /// Finds the longest run of cached blocks that <paramref name="tokens"/> starts with, at most
    /// <paramref name="maxBlocks"/>, writing their slots to <paramref name="slots"/>; returns how many.
    /// </summary>
    internal int Match(ReadOnlySpan<int> tokens, int maxBlocks, Span<int> slots)
    {
        var found = 0;
        var parent = None;
        ulong hash = 0;
        maxBlocks = Math.Min(Math.Min(maxBlocks, tokens.Length / BlockTokens), slots.Length);
        while (found < maxBlocks)
        {
            var block = tokens.Slice(found * BlockTokens, BlockTokens);
            hash = Hash(hash, block);
            if (!_index.TryGetValue(hash, out var slot) || !Holds(slot, parent, block))
            {
                break;
            }
            slots[found++] = slot;
            parent = slot;
        }
        // The deepest first, so the prefix's first blocks end up the most recently used.
        for (var i = found - 1; i >= 0; i--)
        {
            Touch(slots[i]);
        }
        return found;
    }

    /// <summary>Copies block <paramref name="slot"/> into row <paramref name="index"/> of <paramref name="region"/> at token <paramref name="first"/>.</summary>
    internal void CopyTo(int slot, KvRegion region, int index, int first)
    {
        var data = _data[slot]!;
        var heads = _layout.KvHeads;
        for (var at = 0; at < _layout.Layers * 2; at++)
        {
            for (var h = 0; h < heads; h++)
            {
                data.AsSpan(((at * heads) + h) * _headBytes, _headBytes).CopyTo(region.TokenBytes(at, index, h, first, BlockTokens));
            }
        }
    }

    /// <summary>
    /// Stores every whole block of <paramref name="tokens"/> not stored yet, reading their keys and values from row
    /// <paramref name="index"/> of <paramref name="region"/>, which holds (at least) those tokens from its first column.
    /// </summary>
    internal void Insert(ReadOnlySpan<int> tokens, KvRegion region, int index)
    {
        if (Capacity == 0)
        {
            return;
        }
        var blocks = tokens.Length / BlockTokens;
        var parent = None;
        ulong hash = 0;
        for (var b = 0; b < blocks; b++)
        {
            var block = tokens.Slice(b * BlockTokens, BlockTokens);
            hash = Hash(hash, block);
            if (_index.TryGetValue(hash, out var slot) && Holds(slot, parent, block))
            {
                Touch(slot);
                parent = slot;
                continue;
            }
            slot = Take();
            if (slot == parent)
            {
                // The budget is smaller than this prefix: its own parent was the oldest block.
                return;
            }
            var data = _data[slot] ??= GC.AllocateUninitializedArray<byte>(_blockBytes, pinned: true);
            var heads = _layout.KvHeads;
            for (var at = 0; at < _layout.Layers * 2; at++)
            {
                for (var h = 0; h < heads; h++)
                {
                    region.TokenBytes(at, index, h, b * BlockTokens, BlockTokens).CopyTo(data.AsSpan(((at * heads) + h) * _headBytes, _headBytes));
                }
            }
            block.CopyTo(_tokens.AsSpan(slot * BlockTokens, BlockTokens));
            _hash[slot] = hash;
            _parent[slot] = parent;
            _parentVersion[slot] = parent == None ? 0 : _version[parent];
            _index[hash] = slot;
            Touch(slot);
            parent = slot;
        }
    }

    /// <summary>Whether <paramref name="slot"/> holds exactly <paramref name="block"/> after <paramref name="parent"/>.</summary>
    private bool Holds(int slot, int parent, ReadOnlySpan<int> block) =>
        _parent[slot] == parent
        && (parent == None || _parentVersion[slot] == _version[parent])
        && _tokens.AsSpan(slot * BlockTokens, BlockTokens).SequenceEqual(block);

    /// <summary>A free slot, or the least recently used one, evicted.</summary>
    private int Take()
    {
        if (_used < Capacity)
        {
            var free = _used++;
            _older[free] = _newer[free] = None;
            return free;
        }
        var slot = _oldest;
        Unlink(slot);
        if (_index.TryGetValue(_hash[slot], out var indexed) && indexed == slot)
        {
            _index.Remove(_hash[slot]);
        }
        // Its children now name a parent version that no longer exists: they are never matched again.
        _version[slot]++;
        return slot;
    }

    private void Touch(int slot)
    {
        if (_newest == slot)
        {
            return;
        }
        Unlink(slot);
        _older[slot] = _newest;
        _newer[slot] = None;
        if (_newest != None)
        {
            _newer[_newest] = slot;
        }
        _newest = slot;
        if (_oldest == None)
        {
            _oldest = slot;
        }
    }

    private void Unlink(int slot)
    {
        var older = _older[slot];
        var newer = _newer[slot];
        if (older != None)
        {
            _newer[older] = newer;
        }
        else if (_oldest == slot)
        {
            _oldest = newer;
        }
        if (newer != None)
        {
            _older[newer] = older;
        }
        else if (_newest == slot)
        {
            _newest = older;
        }
        _older[slot] = _newer[slot] = None;
    }

    /// <summary>The chained hash of a prefix ending with <paramref name="block"/> (64-bit mixing; checked exactly by <see cref="Holds"/>).</summary>
    private static ulong Hash(ulong previous, ReadOnlySpan<int> block)
    {
        var hash = previous ^ 0x9E3779B97F4A7C15UL;
        foreach (var token in block)
        {
            hash = (hash ^ (uint)token) * 0x100000001B3UL;
            hash ^= hash >> 29;
        }
        hash ^= hash >> 31;
        hash *= 0xBF58476D1CE4E5B9UL;
        return hash ^ (hash >> 27);
    }
}
