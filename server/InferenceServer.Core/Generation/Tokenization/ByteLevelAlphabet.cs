namespace InferenceServer.Generation.Tokenization;

/// <summary>GPT-2's reversible byte-to-character map (bytes_to_unicode): printable bytes stand for themselves, the rest move to U+0100 and up.</summary>
internal static class ByteLevelAlphabet
{
    /// <summary>The character each byte becomes.</summary>
    public static readonly char[] ByteToChar = Build();

    private static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(p => p.c, p => (byte)p.b);

    private static char[] Build()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    /// <summary>The UTF-8 bytes of <paramref name="text"/>, each as its mapped character.</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                span[i] = ByteToChar[source[i]];
            }
        });
    }

    /// <summary>Appends the bytes <paramref name="token"/> stands for; a token with a character outside the map contributes its own UTF-8 bytes (as Rust does).</summary>
    public static void AppendBytes(string token, List<byte> bytes)
    {
        foreach (var c in token)
        {
            if (!CharToByte.ContainsKey(c))
            {
                bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(token));
                return;
            }
        }
        foreach (var c in token)
        {
            bytes.Add(CharToByte[c]);
        }
    }
}
