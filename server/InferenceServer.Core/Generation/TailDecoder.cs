using System.Collections;

namespace InferenceServer.Generation;

/// <summary>
/// vLLM-style incremental detokenization for tokenizers that can only decode whole id lists: decodes a short tail of the ids
/// (from the prefix offset) and emits the part beyond the already-emitted prefix once it does not end in U+FFFD, i.e. once
/// no UTF-8 character is cut in half. Decoding a tail rather than single ids keeps merges and leading-space rules right.
/// A tail that does not start the sequence is decoded behind an anchor token whose text is then cut off, so the decoder
/// treats it as mid-sequence text: SentencePiece decoding drops the leading space of what it thinks is the first word
/// (Microsoft.ML.Tokenizers even skips byte tokens to find that word), which would lose spaces inside the sequence.
/// </summary>
internal sealed class TailDecoder : IncrementalDecoder
{
    /// <summary>How many context ids to decode in front of the first generated token (as vLLM does with the prompt).</summary>
    internal const int ContextTokens = 5;

    private readonly Func<IEnumerable<int>, string> _decode;
    private readonly int _vocabularySize;
    private readonly int _anchor;
    private readonly string _anchorText = "";
    private readonly IdWindow _window = new();
    // Only ids from _prefixOffset on matter; earlier ones are dropped by Compact so a long sequence keeps a small buffer.
    private int[] _ids = new int[32];
    private int _count;
    private int _prefixOffset;
    private int _readOffset;
    // Length of the text of ids [_prefixOffset, _readOffset): it only changes when text is emitted, so it is cached.
    private int _prefixLength;
    // Whether _ids[0] is the first token of the whole text (no context, nothing compacted away), to be decoded as such.
    private bool _atStart;

    /// <summary>
    /// Creates a decoder; <paramref name="decode"/> must decode the ids it is given (it is called with a reused, single-pass view).
    /// <paramref name="anchor"/> (optional, -1 for none) is a token with a plain, complete text that never changes what follows it.
    /// </summary>
    public TailDecoder(Func<IEnumerable<int>, string> decode, int vocabularySize, ReadOnlySpan<int> context, int anchor = -1)
    {
        _decode = decode;
        _vocabularySize = vocabularySize;
        if (anchor >= 0)
        {
            _window.Reset([], 0, 0, anchor);
            _anchorText = decode(_window);
            _anchor = _anchorText.Length > 0 ? anchor : -1;
        }
        else
        {
            _anchor = -1;
        }
        var tail = context[Math.Max(0, context.Length - ContextTokens)..];
        foreach (var id in tail)
        {
            CheckId(id);
        }
        tail.CopyTo(_ids);
        _count = tail.Length;
        _readOffset = _count;
        _atStart = context.IsEmpty;
        _prefixLength = _count == 0 ? 0 : Decode(0, _count, out var skip).Length - skip;
    }

    /// <inheritdoc/>
    public override string Append(int tokenId)
    {
        CheckId(tokenId);
        if (_count == _ids.Length)
        {
            Compact();
        }
        _ids[_count++] = tokenId;
        var text = Decode(_prefixOffset, _count, out var skip);
        if (text.Length - skip <= _prefixLength || text[^1] == '\uFFFD')
        {
            return "";
        }
        var delta = text[(skip + _prefixLength)..];
        _prefixOffset = _readOffset;
        _readOffset = _count;
        _prefixLength = Decode(_prefixOffset, _readOffset, out skip).Length - skip;
        return delta;
    }

    /// <inheritdoc/>
    public override string Flush()
    {
        if (_readOffset == _count)
        {
            return "";
        }
        var text = Decode(_prefixOffset, _count, out var skip);
        var delta = text.Length - skip > _prefixLength ? text[(skip + _prefixLength)..] : "";
        _prefixOffset = _readOffset = _count;
        _prefixLength = 0;
        return delta;
    }

    // The text of ids [start, end) as it reads inside the sequence; its first `skip` characters are the anchor's, not part of it.
    private string Decode(int start, int end, out int skip)
    {
        if (_anchor >= 0 && !(_atStart && start == 0))
        {
            _window.Reset(_ids, start, end, _anchor);
            var anchored = _decode(_window);
            if (anchored.StartsWith(_anchorText, StringComparison.Ordinal))
            {
                skip = _anchorText.Length;
                return anchored;
            }
        }
        skip = 0;
        _window.Reset(_ids, start, end, -1);
        return _decode(_window);
    }

    private void CheckId(int id)
    {
        if ((uint)id >= (uint)_vocabularySize)
        {
            throw Inference.InferenceException.InvalidArgument($"token id {id} is outside the vocabulary (0..{_vocabularySize - 1})");
        }
    }

    // Drops the ids before the prefix offset, or grows the buffer when the live tail fills it.
    private void Compact()
    {
        if (_prefixOffset > _ids.Length / 2)
        {
            Array.Copy(_ids, _prefixOffset, _ids, 0, _count - _prefixOffset);
            _count -= _prefixOffset;
            _readOffset -= _prefixOffset;
            _prefixOffset = 0;
            _atStart = false;
        }
        else
        {
            Array.Resize(ref _ids, _ids.Length * 2);
        }
    }

    /// <summary>A reusable single-pass view of part of an array (optionally behind one lead id), so decoding allocates no enumerable per token.</summary>
    private sealed class IdWindow : IEnumerable<int>, IEnumerator<int>
    {
        private int[] _array = [];
        private int _lead = -1;
        private int _start;
        private int _end;
        private int _position;

        public void Reset(int[] array, int start, int end, int lead)
        {
            _array = array;
            _start = start;
            _end = end;
            _lead = lead;
            Rewind();
        }

        // Position start - 1 is "before the first id", start - 2 "before the lead id".
        public int Current => _position == _start - 1 ? _lead : _array[_position];

        object IEnumerator.Current => Current;

        public IEnumerator<int> GetEnumerator()
        {
            Rewind();
            return this;
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

        public bool MoveNext() => ++_position < _end;

        void IEnumerator.Reset() => Rewind();

        public void Dispose()
        {
        }

        private void Rewind() => _position = _lead >= 0 ? _start - 2 : _start - 1;
    }
}
