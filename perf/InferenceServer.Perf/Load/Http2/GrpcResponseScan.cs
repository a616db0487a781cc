namespace InferenceServer.Perf.Http2;

/// <summary>
/// What the load generator checks in a ModelInferResponse body, fed DATA frame by DATA frame without buffering it:
/// the gRPC message prefix (a zero compression flag, the big-endian length), then the message's top-level protobuf
/// fields (tags and lengths only; values are skipped) for field 5, <c>outputs</c>. The same check as
/// <see cref="ResponseCheck"/> (the Grpc.Net.Client path), incrementally, so that a 7 MB response needs no buffer.
/// </summary>
internal struct GrpcResponseScan
{
    private const int OutputsField = 5;

    private Phase _phase;
    private int _prefixRead;
    private long _messageLeft;
    private ulong _varint;
    private int _varintShift;
    private int _wireType;
    private int _field;
    private long _skip;

    private enum Phase : byte { Prefix, Tag, VarintValue, Length, Skip, Failed }

    public bool HasOutputs { get; private set; }

    /// <summary>Whether a whole message has been read (and nothing is cut off).</summary>
    public readonly bool Complete => _phase == Phase.Prefix && _prefixRead == 0 && Messages > 0;

    public int Messages { get; private set; }

    /// <summary>Set when the body is not an uncompressed gRPC message holding a valid protobuf.</summary>
    public string? Error { get; private set; }

    public void Reset() => this = default;

    public void Feed(ReadOnlySpan<byte> data)
    {
        var i = 0;
        while (i < data.Length && _phase != Phase.Failed)
        {
            switch (_phase)
            {
                case Phase.Prefix:
                    var b = data[i++];
                    if (_prefixRead == 0)
                    {
                        // The compression flag: the request asks for no compression, so a set flag is an error.
                        if (b != 0)
                        {
                            Fail("compressed or malformed gRPC message");
                            break;
                        }
                        _messageLeft = 0;
                    }
                    else
                    {
                        _messageLeft = (_messageLeft << 8) | b;
                    }
                    if (++_prefixRead == 5)
                    {
                        _prefixRead = 0;
                        StartField();
                    }
                    break;
                case Phase.Skip:
                    var n = (int)Math.Min(_skip, data.Length - i);
                    i += n;
                    _skip -= n;
                    _messageLeft -= n;
                    if (_skip == 0)
                    {
                        StartField();
                    }
                    break;
                default:
                    // Tag, a varint value or a length: one varint, byte by byte.
                    var v = data[i++];
                    _messageLeft--;
                    if (_varintShift > 63)
                    {
                        Fail("varint too long");
                        break;
                    }
                    _varint |= (ulong)(v & 0x7F) << _varintShift;
                    _varintShift += 7;
                    if (v >= 0x80)
                    {
                        break;
                    }
                    var value = _varint;
                    _varint = 0;
                    _varintShift = 0;
                    EndVarint(value);
                    break;
            }
        }
    }

    private void EndVarint(ulong value)
    {
        switch (_phase)
        {
            case Phase.Tag:
                _field = (int)(value >> 3);
                _wireType = (int)(value & 7);
                switch (_wireType)
                {
                    case 0: _phase = Phase.VarintValue; break;
                    case 1: Skip(8); break;
                    case 2: _phase = Phase.Length; break;
                    case 5: Skip(4); break;
                    default: Fail($"unexpected wire type {_wireType}"); break;
                }
                break;
            case Phase.VarintValue:
                StartField();
                break;
            case Phase.Length:
                if (_wireType == 2 && _field == OutputsField)
                {
                    HasOutputs = true;
                }
                Skip((long)Math.Min(value, long.MaxValue));
                break;
        }
    }

    private void Skip(long bytes)
    {
        if (bytes > _messageLeft)
        {
            Fail("a field runs past the end of the message");
            return;
        }
        _skip = bytes;
        _phase = Phase.Skip;
        if (bytes == 0)
        {
            StartField();
        }
    }

    /// <summary>The next top-level field, or the end of the message.</summary>
    private void StartField()
    {
        if (_messageLeft < 0)
        {
            Fail("a field runs past the end of the message");
        }
        else if (_messageLeft == 0)
        {
            Messages++;
            _phase = Phase.Prefix;
        }
        else
        {
            _phase = Phase.Tag;
        }
    }

    private void Fail(string error)
    {
        Error ??= error;
        _phase = Phase.Failed;
    }
}
