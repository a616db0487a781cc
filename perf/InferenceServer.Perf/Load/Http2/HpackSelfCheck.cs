using System.Text;

namespace InferenceServer.Perf.Http2;

/// <summary>
/// Checks the HPACK decoder on RFC 7541's own examples (Appendix C.3–C.6: the same header lists without and with
/// Huffman coding, requests through a 4,096-byte table and responses through a 256-byte one, which evicts) and the
/// Huffman code on a round trip of every byte value. Runs once, before the raw client's first connection: a mistyped
/// table entry or a decoding slip stops the benchmark instead of skewing it.
/// </summary>
internal static class HpackSelfCheck
{
    private static readonly Lazy<string?> Result = new(Run);

    /// <summary>Throws when the decoder fails any example.</summary>
    public static void EnsurePassed()
    {
        if (Result.Value is { } failure)
        {
            throw new InvalidOperationException($"HPACK self-check failed: {failure}");
        }
    }

    private const string Request1 = ":method: GET\n:scheme: http\n:path: /\n:authority: www.example.com\n";
    private const string Request2 = Request1 + "cache-control: no-cache\n";
    private const string Request3 = ":method: GET\n:scheme: https\n:path: /index.html\n:authority: www.example.com\ncustom-key: custom-value\n";
    private const string Response1 = ":status: 302\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\nlocation: https://www.example.com\n";
    private const string Response2 = ":status: 307\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:21 GMT\nlocation: https://www.example.com\n";
    private const string Response3 = ":status: 200\ncache-control: private\ndate: Mon, 21 Oct 2013 20:13:22 GMT\nlocation: https://www.example.com\n" +
        "content-encoding: gzip\nset-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1\n";

    /// <summary>(hex of the header block, the decoded list, the table size after it); each sequence shares one decoder.</summary>
    private static readonly (int TableSize, (string Hex, string Headers, int Size)[] Blocks)[] Sequences =
    [
        (4096, [ // C.3, no Huffman
            ("828684410f7777772e6578616d706c652e636f6d", Request1, 57),
            ("828684be58086e6f2d6361636865", Request2, 110),
            ("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565", Request3, 164)]),
        (4096, [ // C.4, Huffman
            ("828684418cf1e3c2e5f23a6ba0ab90f4ff", Request1, 57),
            ("828684be5886a8eb10649cbf", Request2, 110),
            ("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf", Request3, 164)]),
        (256, [ // C.5, no Huffman, evictions
            ("4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d", Response1, 222),
            ("4803333037c1c0bf", Response2, 222),
            ("88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31", Response3, 215)]),
        (256, [ // C.6, Huffman, evictions
            ("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3", Response1, 222),
            ("4883640effc1c0bf", Response2, 222),
            ("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007", Response3, 215)]),
    ];

    private static string? Run()
    {
        foreach (var (tableSize, blocks) in Sequences)
        {
            var decoder = new HpackDecoder(tableSize);
            foreach (var (hex, headers, size) in blocks)
            {
                var sink = new TextSink();
                if (!decoder.TryDecode(Convert.FromHexString(hex), sink))
                {
                    return $"block {hex[..16]}…: {decoder.Error}";
                }
                if (sink.Text.ToString() != headers || decoder.Table.Size != size)
                {
                    return $"block {hex[..16]}… decoded to\n{sink.Text}(table size {decoder.Table.Size}), expected\n{headers}(table size {size})";
                }
            }
        }
        var all = Enumerable.Range(0, 256).Select(b => (byte)b).ToArray();
        var output = new byte[HuffmanCode.MaxDecodedLength(all.Length * 4)];
        var decoded = HuffmanCode.Decode(HuffmanCode.Encode(all), output);
        if (decoded != all.Length || !output.AsSpan(0, decoded).SequenceEqual(all))
        {
            return "the Huffman code does not round-trip the byte values 0–255";
        }
        // A padding of 8 or more ones, and padding that is not all ones, must be rejected.
        if (HuffmanCode.Decode([0x1F, 0xFF], output) != -1 || HuffmanCode.Decode([0x00], output) != -1)
        {
            return "the Huffman decoder accepts invalid padding";
        }
        return null;
    }

    private sealed class TextSink : IHeaderSink
    {
        public StringBuilder Text { get; } = new();

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value) =>
            Text.Append(Encoding.ASCII.GetString(name)).Append(": ").Append(Encoding.ASCII.GetString(value)).Append('\n');
    }
}
