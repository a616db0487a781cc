using System.Buffers.Binary;
using System.Text;
using InferenceServer.Client;
using InferenceServer.Client.Cli;
using InferenceServer.Client.Cli.Tensors;

namespace InferenceServer.Tests.Client;

/// <summary>The .npy reader and writer against files built byte by byte from the NumPy format specification.</summary>
public sealed class InferCliNpyTests
{
    /// <summary>A .npy file as the specification lays it out: magic, version, header length, padded dict, data.</summary>
    internal static byte[] HandMadeNpy(int major, string dict, byte[] data)
    {
        var prefix = major == 1 ? 10 : 12;
        var header = dict;
        while ((prefix + header.Length + 1) % 64 != 0)
        {
            header += " ";
        }
        header += "\n";
        var bytes = new List<byte> { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0 };
        if (major == 1)
        {
            bytes.Add((byte)(header.Length & 0xFF));
            bytes.Add((byte)(header.Length >> 8));
        }
        else
        {
            bytes.AddRange(BitConverter.GetBytes((uint)header.Length));
        }
        bytes.AddRange(Encoding.ASCII.GetBytes(header));
        bytes.AddRange(data);
        return [.. bytes];
    }

    internal static byte[] Int32Bytes(params int[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void Reads_a_hand_made_int32_file_and_writes_the_same_bytes_back()
    {
        var file = HandMadeNpy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", Int32Bytes(1, -2, 3, 40000, -5, 6));

        var tensor = NpyFormat.Parse(file, "X", "fixture");

        Assert.Equal("INT32", tensor.Datatype);
        Assert.Equal([2L, 3L], tensor.Shape);
        Assert.Equal(["1", "-2", "3", "40000", "-5", "6"], Enumerable.Range(0, 6).Select(i => ElementFormat.FormatElement(tensor, i)));
        using var written = new MemoryStream();
        NpyFormat.Write(written, tensor);
        Assert.Equal(file, written.ToArray());
    }

    [Fact]
    public void Reads_version_2_unicode_and_bytes_strings_and_one_byte_types()
    {
        var unicode = new byte[2 * 3 * 4];
        var words = new[] { "héé", "a" };
        for (var w = 0; w < words.Length; w++)
        {
            for (var c = 0; c < words[w].Length; c++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(unicode.AsSpan((w * 3 + c) * 4), words[w][c]);
            }
        }
        var strings = NpyFormat.Parse(HandMadeNpy(2, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", unicode), "S", "fixture");
        Assert.Equal("BYTES", strings.Datatype);
        Assert.Equal(["héé", "a"], strings.ToByteArrays().Select(e => Encoding.UTF8.GetString(e)));

        var raw = NpyFormat.Parse(HandMadeNpy(1, "{'descr': '|S2', 'fortran_order': False, 'shape': (2,), }", [0x61, 0x62, 0xFF, 0x00]), "B", "fixture");
        Assert.Equal([[0x61, 0x62], [0xFF]], raw.ToByteArrays());

        var flags = NpyFormat.Parse(HandMadeNpy(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", [1, 0, 1]), "F", "fixture");
        Assert.Equal(["true", "false", "true"], Enumerable.Range(0, 3).Select(i => ElementFormat.FormatElement(flags, i)));

        var halves = NpyFormat.Parse(HandMadeNpy(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (1,), }", BitConverter.GetBytes((Half)1.5)), "H", "fixture");
        Assert.Equal("FP16", halves.Datatype);
        Assert.Equal("1.5", ElementFormat.FormatElement(halves, 0));
    }

    [Fact]
    public void Writer_round_trips_every_numpy_datatype_and_strings()
    {
        foreach (var (datatype, size) in new[] { ("INT8", 1), ("INT16", 2), ("INT32", 4), ("INT64", 8), ("UINT8", 1), ("UINT16", 2), ("UINT32", 4), ("UINT64", 8), ("FP16", 2), ("FP32", 4), ("FP64", 8), ("BOOL", 1) })
        {
            var data = Enumerable.Range(0, 4 * size).Select(i => datatype == "BOOL" ? (byte)(i % 2) : (byte)(i * 7 + 1)).ToArray();
            var tensor = Tensor.FromRaw("T", datatype, [2, 2], data);
            using var stream = new MemoryStream();
            NpyFormat.Write(stream, tensor);
            Assert.Equal(0, (stream.Length - data.Length) % 64);
            var back = NpyFormat.Parse(stream.ToArray(), "T", datatype);
            Assert.Equal(datatype, back.Datatype);
            Assert.Equal(tensor.Shape, back.Shape);
            Assert.Equal(data, back.ToRawBytes());
        }
        var text = Tensor.FromByteArrays("S", [Encoding.UTF8.GetBytes("naïve"), [], Encoding.UTF8.GetBytes("🙂")], 3);
        using var textStream = new MemoryStream();
        NpyFormat.Write(textStream, text);
        Assert.Equal(text.ToByteArrays(), NpyFormat.Parse(textStream.ToArray(), "S", "text").ToByteArrays());
    }

    [Theory]
    [InlineData("{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }", "big-endian")]
    [InlineData("{'descr': '<i4', 'fortran_order': True, 'shape': (1,), }", "Fortran")]
    [InlineData("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", "'<c8' is not supported")]
    [InlineData("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "object arrays")]
    [InlineData("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (1,), }", "not a plain array")]
    public void Refuses_what_it_cannot_read_with_a_clear_message(string dict, string expected)
    {
        var error = Assert.Throws<CliInputException>(() => NpyFormat.Parse(HandMadeNpy(1, dict, new byte[8]), "X", "bad.npy"));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.StartsWith("bad.npy", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_a_file_that_is_not_npy_or_is_cut_short()
    {
        Assert.Contains("not a NumPy .npy file", Assert.Throws<CliInputException>(() => NpyFormat.Parse("hello world"u8, "X", "x.npy")).Message, StringComparison.Ordinal);
        var cut = HandMadeNpy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", Int32Bytes(1, 2));
        Assert.Contains("needs 16 bytes", Assert.Throws<CliInputException>(() => NpyFormat.Parse(cut, "X", "x.npy")).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"datatype\": \"UINT8\", \"data\": [1, 300]}", "req.json: input X: element 1: 300 is not a valid UINT8 value")]
    [InlineData("{\"datatype\": \"BOOL\", \"data\": [true, 2]}", "req.json: input X: element 1: 2 is not a valid BOOL value")]
    [InlineData("{\"datatype\": \"BYTES\", \"data\": [[\"a\"], [7]]}", "req.json: input X: element 1 must be a string for BYTES")]
    [InlineData("{\"datatype\": \"BF16\", \"data\": [1]}", "req.json: input X: BF16 has no JSON form")]
    [InlineData("{\"datatype\": \"INT4\", \"data\": [1]}", "req.json: input X: unknown datatype 'INT4' (one of BOOL, UINT8,")]
    [InlineData("{\"datatype\": \"INT32\", \"shape\": [2, 2], \"data\": [1, 2, 3]}", "req.json: input X: tensor 'X': shape [2,2] holds 4 elements but 3 were given")]
    public void Json_inputs_refuse_bad_values_naming_the_file_input_and_element(string json, string expected)
    {
        var error = Assert.Throws<CliInputException>(() => JsonInputs.ParseTensor("X", System.Text.Json.JsonDocument.Parse(json).RootElement, "req.json"));
        Assert.StartsWith(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_inputs_read_nested_data_with_or_without_a_shape()
    {
        var nested = JsonInputs.ParseTensor("X", System.Text.Json.JsonDocument.Parse("{\"datatype\": \"INT16\", \"shape\": [2, 2], \"data\": [[1, 2], [3, 4]]}").RootElement, "req.json");
        Assert.Equal([(short)1, 2, 3, 4], nested.ToArray<short>());
        var flat = JsonInputs.ParseTensor("X", System.Text.Json.JsonDocument.Parse("{\"datatype\": \"BYTES\", \"data\": [\"a\", \"b\"]}").RootElement, "req.json");
        Assert.Equal([2L], flat.Shape);
        Assert.Equal(["a", "b"], flat.ToStrings());
    }
}
