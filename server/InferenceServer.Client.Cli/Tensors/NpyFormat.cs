using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace InferenceServer.Client.Cli.Tensors;

/// <summary>
/// NumPy's <c>.npy</c> format (versions 1.0, 2.0 and 3.0): the magic string, a version, the header length, a Python dict
/// literal with <c>descr</c>, <c>fortran_order</c> and <c>shape</c>, padded so the data starts at a multiple of 64, then
/// the data in C order. Little-endian numbers (<c>&lt;i1..&lt;i8</c>, <c>&lt;u1..&lt;u8</c>, <c>&lt;f2</c>, <c>&lt;f4</c>,
/// <c>&lt;f8</c>), booleans (<c>|b1</c>), and fixed-width strings for BYTES (<c>&lt;U</c>n: UTF-32, <c>|S</c>n: bytes,
/// both padded with zeros). Big-endian data, Fortran order, structured and object arrays are refused.
/// </summary>
internal static partial class NpyFormat
{
    private static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private static readonly Dictionary<string, string> DatatypeByDescr = new(StringComparer.Ordinal)
    {
        ["i1"] = "INT8", ["i2"] = "INT16", ["i4"] = "INT32", ["i8"] = "INT64",
        ["u1"] = "UINT8", ["u2"] = "UINT16", ["u4"] = "UINT32", ["u8"] = "UINT64",
        ["f2"] = "FP16", ["f4"] = "FP32", ["f8"] = "FP64", ["b1"] = "BOOL",
    };

    /// <summary>Reads a .npy file into a tensor named <paramref name="name"/>.</summary>
    public static Tensor Read(string path, string name)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliInputException($"cannot read {path}: {e.Message}");
        }
        return Parse(bytes, name, path);
    }

    /// <summary>Parses the bytes of a .npy file; <paramref name="source"/> names it in error messages.</summary>
    public static Tensor Parse(ReadOnlySpan<byte> bytes, string name, string source)
    {
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
        {
            throw new CliInputException($"{source}: not a NumPy .npy file (no \\x93NUMPY magic string)");
        }
        int major = bytes[6], minor = bytes[7];
        int headerLength, headerStart;
        switch (major)
        {
            case 1:
                headerLength = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]);
                headerStart = 10;
                break;
            case 2 or 3 when bytes.Length >= 12:
                var length = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
                headerLength = length > int.MaxValue ? int.MaxValue : (int)length;
                headerStart = 12;
                break;
            default:
                throw new CliInputException($"{source}: .npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)");
        }
        if (headerStart + headerLength > bytes.Length)
        {
            throw new CliInputException($"{source}: the .npy header is cut short (it says {headerLength} bytes, the file is {bytes.Length})");
        }
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetString(bytes.Slice(headerStart, headerLength));
        var descr = DescrPattern().Match(header);
        var fortran = FortranPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !fortran.Success || !shapeMatch.Success)
        {
            throw new CliInputException($"{source}: the .npy header is not a plain array's ('descr' as a string, 'fortran_order' and 'shape'): {header.Trim()}");
        }
        if (fortran.Groups[1].Value == "True")
        {
            throw new CliInputException($"{source}: Fortran-order arrays are not supported; save a C-order array (np.ascontiguousarray(a))");
        }
        long[] shape;
        try
        {
            shape = shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
                .Select(d => long.Parse(d.TrimEnd('L'), NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (Exception e) when (e is FormatException or OverflowException)
        {
            throw new CliInputException($"{source}: the .npy shape ({shapeMatch.Groups[1].Value}) is not a tuple of sizes");
        }
        var data = bytes[(headerStart + headerLength)..];
        var count = shape.Aggregate(1L, (a, b) => a * b);
        var (datatype, width) = ParseDescr(descr.Groups[1].Value, source);
        if (data.Length < count * width)
        {
            throw new CliInputException($"{source}: shape ({string.Join(", ", shape)}) needs {count * width} bytes of data but the file has {data.Length}");
        }
        if (datatype != "BYTES")
        {
            return Tensor.FromRaw(name, datatype, shape, data[..(int)(count * width)]);
        }
        var unicode = descr.Groups[1].Value[1] == 'U';
        var elements = new List<byte[]>((int)count);
        for (var i = 0; i < count; i++)
        {
            var cell = data.Slice(i * width, width);
            if (unicode)
            {
                var text = new StringBuilder();
                for (var c = 0; c + 4 <= cell.Length; c += 4)
                {
                    var codePoint = BinaryPrimitives.ReadInt32LittleEndian(cell[c..]);
                    if (codePoint == 0)
                    {
                        break;
                    }
                    if (!Rune.IsValid(codePoint))
                    {
                        throw new CliInputException($"{source}: element {i} holds an invalid code point 0x{codePoint:X}");
                    }
                    text.Append(new Rune(codePoint).ToString());
                }
                elements.Add(Encoding.UTF8.GetBytes(text.ToString()));
            }
            else
            {
                var end = cell.IndexOf((byte)0);
                elements.Add((end < 0 ? cell : cell[..end]).ToArray());
            }
        }
        return Tensor.FromByteArrays(name, elements, shape);
    }

    private static (string Datatype, int Width) ParseDescr(string descr, string source)
    {
        if (descr.Length >= 2 && descr[0] is '<' or '|' or '=')
        {
            var code = descr[1..];
            if (DatatypeByDescr.TryGetValue(code, out var datatype) && (descr[0] != '|' || code is "i1" or "u1" or "b1"))
            {
                return (datatype, int.Parse(code[1..], CultureInfo.InvariantCulture));
            }
            if (code.Length > 1 && code[0] is 'U' or 'S' && int.TryParse(code[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var chars) && chars > 0
                && (code[0] == 'U' ? descr[0] != '|' : true))
            {
                return ("BYTES", code[0] == 'U' ? chars * 4 : chars);
            }
        }
        var hint = descr.StartsWith('>') ? "big-endian data is not supported; save with a.astype(a.dtype.newbyteorder('<'))"
            : descr.Contains('O') ? "object arrays are not supported; save strings as a fixed-width array (a.astype(str))"
            : "supported: <i1 <i2 <i4 <i8 <u1 <u2 <u4 <u8 <f2 <f4 <f8 |b1, and <Un / |Sn for BYTES";
        throw new CliInputException($"{source}: dtype '{descr}' is not supported ({hint})");
    }

    /// <summary>Writes <paramref name="tensor"/> as a .npy file (version 1.0, or 2.0 when the header needs it).</summary>
    public static void Write(string path, Tensor tensor)
    {
        using var stream = File.Create(path);
        Write(stream, tensor);
    }

    /// <summary>
    /// Writes a .npy file. BF16 has no NumPy dtype and is written as <c>&lt;f4</c> (exact); BYTES is written as
    /// <c>&lt;U</c>n when every element is UTF-8 text, else as <c>|S</c>n.
    /// </summary>
    public static void Write(Stream stream, Tensor tensor)
    {
        string descr;
        byte[] data;
        if (tensor.Datatype == "BYTES")
        {
            (descr, data) = EncodeBytes(tensor.ToByteArrays());
        }
        else if (tensor.Datatype == "BF16")
        {
            descr = "<f4";
            var values = tensor.AsSpan<BFloat16>();
            data = new byte[values.Length * 4];
            for (var i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), values[i].ToSingle());
            }
        }
        else
        {
            var code = DatatypeByDescr.First(pair => pair.Value == tensor.Datatype).Key;
            descr = (code.Length == 2 && code[1] == '1' ? "|" : "<") + code;
            data = tensor.ToRawBytes();
        }
        var shape = tensor.Shape.Count == 1 ? $"({tensor.Shape[0]},)" : $"({string.Join(", ", tensor.Shape)})";
        var dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
        var version = dict.Length + 1 + 10 > ushort.MaxValue ? 2 : 1;
        var prefix = version == 1 ? 10 : 12;
        var total = (prefix + dict.Length + 1 + 63) / 64 * 64;
        var header = dict.PadRight(total - prefix - 1) + "\n";
        var preamble = new byte[prefix];
        Magic.CopyTo(preamble, 0);
        preamble[6] = (byte)version;
        if (version == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(preamble.AsSpan(8), (ushort)header.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(preamble.AsSpan(8), (uint)header.Length);
        }
        stream.Write(preamble);
        stream.Write(Encoding.Latin1.GetBytes(header));
        stream.Write(data);
    }

    private static (string Descr, byte[] Data) EncodeBytes(IReadOnlyList<byte[]> elements)
    {
        var strict = new UTF8Encoding(false, true);
        string[]? texts = new string[elements.Count];
        for (var i = 0; i < elements.Count && texts is not null; i++)
        {
            try
            {
                texts[i] = strict.GetString(elements[i]);
            }
            catch (DecoderFallbackException)
            {
                texts = null;
            }
        }
        if (texts is not null)
        {
            var runes = texts.Select(t => t.EnumerateRunes().Select(r => r.Value).ToArray()).ToArray();
            var width = Math.Max(1, runes.Length == 0 ? 1 : runes.Max(r => r.Length));
            var data = new byte[runes.Length * width * 4];
            for (var i = 0; i < runes.Length; i++)
            {
                for (var c = 0; c < runes[i].Length; c++)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan((i * width + c) * 4), runes[i][c]);
                }
            }
            return ($"<U{width}", data);
        }
        var byteWidth = elements.Count == 0 ? 1 : Math.Max(1, elements.Max(e => e.Length));
        var raw = new byte[elements.Count * byteWidth];
        for (var i = 0; i < elements.Count; i++)
        {
            elements[i].CopyTo(raw, i * byteWidth);
        }
        return ($"|S{byteWidth}", raw);
    }

    [GeneratedRegex(@"['""]descr['""]\s*:\s*['""]([^'""]*)['""]")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"['""]fortran_order['""]\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"['""]shape['""]\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
