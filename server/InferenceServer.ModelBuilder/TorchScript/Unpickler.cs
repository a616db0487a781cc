using System.Buffers.Binary;
using System.Text;

namespace InferenceServer.ModelBuilder.TorchScript;

/// <summary>A global a pickle names (<c>GLOBAL</c>/<c>STACK_GLOBAL</c>): a class or function, never imported here.</summary>
/// <param name="Module">Its module, e.g. <c>torch._utils</c>.</param>
/// <param name="Name">Its name in the module, e.g. <c>_rebuild_tensor_v2</c>.</param>
internal sealed record PickleGlobal(string Module, string Name)
{
    /// <summary><c>module.name</c>.</summary>
    public string FullName => Module + "." + Name;
}

/// <summary>An instance made by <c>NEWOBJ</c> and filled by <c>BUILD</c>: its class and its attributes in pickle order.</summary>
internal sealed class PickleObject(PickleGlobal type)
{
    /// <summary>The class.</summary>
    public PickleGlobal Type { get; } = type;

    /// <summary>The attributes <c>BUILD</c> set, in order.</summary>
    public OrderedDictionary<string, object?> State { get; } = new(StringComparer.Ordinal);
}

/// <summary>A call (<c>REDUCE</c>) the reader's <c>reduce</c> hook did not turn into a value.</summary>
internal sealed record PickleCall(PickleGlobal Callable, object?[] Arguments);

/// <summary>
/// A reader of Python pickles (protocols 2 to 5) that builds plain values and never runs code: integers as
/// <see cref="long"/>, floats as <see cref="double"/>, strings, <see cref="byte"/> arrays, tuples as <c>object?[]</c>,
/// lists as <see cref="List{T}"/>, dicts as <see cref="OrderedDictionary{TKey,TValue}"/>, globals as
/// <see cref="PickleGlobal"/>, <c>NEWOBJ</c> instances as <see cref="PickleObject"/>. Persistent ids (PyTorch's
/// storages) and calls (PyTorch's tensor rebuilds) go to the caller's hooks. It covers the opcodes PyTorch's
/// serializer writes (<c>data.pkl</c>, <c>constants.pkl</c>); any other opcode is an <see cref="InvalidDataException"/>.
/// </summary>
internal sealed class Unpickler
{
    private readonly byte[] _data;
    private readonly Func<object?, object?> _persistentLoad;
    private readonly Func<PickleGlobal, object?[], object?> _reduce;
    private readonly List<object?> _stack = [];
    private readonly Stack<int> _marks = new();
    private readonly Dictionary<long, object?> _memo = [];
    private int _position;

    /// <param name="data">The pickle.</param>
    /// <param name="persistentLoad">Turns a persistent id (<c>BINPERSID</c>) into its object.</param>
    /// <param name="reduce">Performs a call (<c>REDUCE</c>): returns its value, or a <see cref="PickleCall"/> to keep it as data.</param>
    private Unpickler(byte[] data, Func<object?, object?> persistentLoad, Func<PickleGlobal, object?[], object?> reduce)
    {
        _data = data;
        _persistentLoad = persistentLoad;
        _reduce = reduce;
    }

    /// <summary>Reads the object <paramref name="data"/> holds (up to its <c>STOP</c>).</summary>
    /// <exception cref="InvalidDataException">The pickle is malformed or uses an opcode this reader does not cover.</exception>
    public static object? Load(byte[] data, Func<object?, object?> persistentLoad, Func<PickleGlobal, object?[], object?> reduce)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(persistentLoad);
        ArgumentNullException.ThrowIfNull(reduce);
        return new Unpickler(data, persistentLoad, reduce).Run();
    }

    private object? Run()
    {
        while (true)
        {
            int at = _position;
            byte op = Byte();
            switch (op)
            {
                case 0x80: // PROTO
                    Byte();
                    break;
                case 0x95: // FRAME: the length of the next frame, nothing to do when reading from memory
                    Bytes(8);
                    break;
                case (byte)'.': // STOP
                    return Pop();
                case (byte)'(': // MARK
                    _marks.Push(_stack.Count);
                    break;
                case (byte)')': // EMPTY_TUPLE
                    Push(Array.Empty<object?>());
                    break;
                case (byte)'t': // TUPLE
                    Push(PopToMark().ToArray());
                    break;
                case 0x85: // TUPLE1
                case 0x86: // TUPLE2
                case 0x87: // TUPLE3
                    Push(PopMany(op - 0x84));
                    break;
                case (byte)']': // EMPTY_LIST
                    Push(new List<object?>());
                    break;
                case (byte)'l': // LIST
                    Push(PopToMark());
                    break;
                case (byte)'a': // APPEND
                {
                    object? item = Pop();
                    Peek<List<object?>>("APPEND").Add(item);
                    break;
                }
                case (byte)'e': // APPENDS
                {
                    var items = PopToMark();
                    Peek<List<object?>>("APPENDS").AddRange(items);
                    break;
                }
                case (byte)'}': // EMPTY_DICT
                    Push(NewDict());
                    break;
                case (byte)'d': // DICT
                {
                    var dict = NewDict();
                    AddPairs(dict, PopToMark());
                    Push(dict);
                    break;
                }
                case (byte)'s': // SETITEM
                {
                    object? value = Pop();
                    object? key = Pop();
                    AddPairs(Peek<OrderedDictionary<object, object?>>("SETITEM"), [key, value]);
                    break;
                }
                case (byte)'u': // SETITEMS
                {
                    var pairs = PopToMark();
                    AddPairs(Peek<OrderedDictionary<object, object?>>("SETITEMS"), pairs);
                    break;
                }
                case (byte)'N': // NONE
                    Push(null);
                    break;
                case 0x88: // NEWTRUE
                    Push(true);
                    break;
                case 0x89: // NEWFALSE
                    Push(false);
                    break;
                case (byte)'K': // BININT1
                    Push((long)Byte());
                    break;
                case (byte)'M': // BININT2
                    Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2)));
                    break;
                case (byte)'J': // BININT
                    Push((long)BinaryPrimitives.ReadInt32LittleEndian(Bytes(4)));
                    break;
                case 0x8a: // LONG1
                    Push(Long(Byte()));
                    break;
                case (byte)'G': // BINFLOAT (big-endian)
                    Push(BinaryPrimitives.ReadDoubleBigEndian(Bytes(8)));
                    break;
                case (byte)'X': // BINUNICODE
                    Push(Encoding.UTF8.GetString(Bytes(Length(4))));
                    break;
                case 0x8c: // SHORT_BINUNICODE
                    Push(Encoding.UTF8.GetString(Bytes(Byte())));
                    break;
                case 0x8d: // BINUNICODE8
                    Push(Encoding.UTF8.GetString(Bytes(Length(8))));
                    break;
                case (byte)'T': // BINSTRING (Python 2 str)
                    Push(Encoding.Latin1.GetString(Bytes(Length(4))));
                    break;
                case (byte)'U': // SHORT_BINSTRING
                    Push(Encoding.Latin1.GetString(Bytes(Byte())));
                    break;
                case (byte)'B': // BINBYTES
                    Push(Bytes(Length(4)).ToArray());
                    break;
                case (byte)'C': // SHORT_BINBYTES
                    Push(Bytes(Byte()).ToArray());
                    break;
                case (byte)'c': // GLOBAL
                    Push(new PickleGlobal(Line(), Line()));
                    break;
                case 0x93: // STACK_GLOBAL
                {
                    string name = Pop() as string ?? throw Malformed(at, "STACK_GLOBAL needs a string name");
                    string module = Pop() as string ?? throw Malformed(at, "STACK_GLOBAL needs a string module");
                    Push(new PickleGlobal(module, name));
                    break;
                }
                case (byte)'q': // BINPUT
                    _memo[Byte()] = PeekAny();
                    break;
                case (byte)'r': // LONG_BINPUT
                    _memo[BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4))] = PeekAny();
                    break;
                case 0x94: // MEMOIZE
                    _memo[_memo.Count] = PeekAny();
                    break;
                case (byte)'h': // BINGET
                    Push(Memo(Byte(), at));
                    break;
                case (byte)'j': // LONG_BINGET
                    Push(Memo(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)), at));
                    break;
                case (byte)'Q': // BINPERSID
                    Push(_persistentLoad(Pop()));
                    break;
                case (byte)'R': // REDUCE
                {
                    var args = Pop() as object?[] ?? throw Malformed(at, "REDUCE needs an argument tuple");
                    var callable = Pop() as PickleGlobal ?? throw Malformed(at, "REDUCE needs a global to call");
                    Push(_reduce(callable, args));
                    break;
                }
                case 0x81: // NEWOBJ
                {
                    _ = Pop() as object?[] ?? throw Malformed(at, "NEWOBJ needs an argument tuple");
                    var type = Pop() as PickleGlobal ?? throw Malformed(at, "NEWOBJ needs a class");
                    Push(new PickleObject(type));
                    break;
                }
                case (byte)'b': // BUILD
                {
                    object? state = Pop();
                    var target = Peek<PickleObject>("BUILD");
                    if (state is not OrderedDictionary<object, object?> attributes)
                    {
                        throw Malformed(at, $"BUILD of {target.Type.FullName} needs a dict of attributes");
                    }

                    foreach (var (key, value) in attributes)
                    {
                        target.State[key as string ?? throw Malformed(at, "an attribute name is not a string")] = value;
                    }

                    break;
                }
                default:
                    throw Malformed(at, $"opcode 0x{op:x2} is not one this reader covers");
            }
        }
    }

    private static OrderedDictionary<object, object?> NewDict() => new();

    private static void AddPairs(OrderedDictionary<object, object?> dict, List<object?> pairs)
    {
        for (int i = 0; i + 1 < pairs.Count; i += 2)
        {
            dict[pairs[i] ?? throw new InvalidDataException("A pickled dict has a None key.")] = pairs[i + 1];
        }
    }

    private void Push(object? value) => _stack.Add(value);

    private object? Pop()
    {
        if (_stack.Count == 0 || (_marks.Count > 0 && _marks.Peek() == _stack.Count))
        {
            throw Malformed(_position - 1, "the stack is empty");
        }

        object? value = _stack[^1];
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private object?[] PopMany(int count)
    {
        var values = new object?[count];
        for (int i = count - 1; i >= 0; i--)
        {
            values[i] = Pop();
        }

        return values;
    }

    private List<object?> PopToMark()
    {
        if (_marks.Count == 0)
        {
            throw Malformed(_position - 1, "no MARK to pop to");
        }

        int mark = _marks.Pop();
        var items = _stack.GetRange(mark, _stack.Count - mark);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private object? PeekAny() => _stack.Count > 0 ? _stack[^1] : throw Malformed(_position - 1, "nothing to memoize");

    private T Peek<T>(string opcode) where T : class =>
        PeekAny() as T ?? throw Malformed(_position - 1, $"{opcode} needs a {typeof(T).Name} on the stack");

    private object? Memo(long key, int at) =>
        _memo.TryGetValue(key, out object? value) ? value : throw Malformed(at, $"memo entry {key} was never stored");

    private byte Byte() => Bytes(1)[0];

    private ReadOnlySpan<byte> Bytes(int count)
    {
        if (count < 0 || _position + count > _data.Length)
        {
            throw Malformed(_position, "the pickle ends early");
        }

        var span = _data.AsSpan(_position, count);
        _position += count;
        return span;
    }

    private int Length(int width)
    {
        ulong length = width == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)) : BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8));
        return length <= (ulong)(_data.Length - _position) ? (int)length : throw Malformed(_position, "a length runs past the end");
    }

    private object Long(int count)
    {
        var bytes = Bytes(count);
        if (count > 8)
        {
            return new System.Numerics.BigInteger(bytes, isUnsigned: false, isBigEndian: false);
        }

        long value = 0;
        for (int i = count - 1; i >= 0; i--)
        {
            value = (value << 8) | bytes[i];
        }

        // Sign-extend from the top byte written.
        return count is > 0 and < 8 && (bytes[count - 1] & 0x80) != 0 ? value - (1L << (8 * count)) : value;
    }

    private string Line()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _position);
        if (end < 0)
        {
            throw Malformed(_position, "a GLOBAL name has no line end");
        }

        string line = Encoding.UTF8.GetString(_data, _position, end - _position);
        _position = end + 1;
        return line;
    }

    private static InvalidDataException Malformed(int at, string what) => new($"pickle byte {at}: {what}.");
}
