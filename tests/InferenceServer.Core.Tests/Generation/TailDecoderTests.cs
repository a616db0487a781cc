using System.Text;
using InferenceServer.Generation;

namespace InferenceServer.Tests.Core.Generation;

/// <summary>The streaming algorithm on a byte tokenizer (token = one UTF-8 byte), where every multi-byte character spans tokens.</summary>
public sealed class TailDecoderTests
{
    private static string DecodeBytes(IEnumerable<int> ids) => Encoding.UTF8.GetString(ids.Select(i => (byte)i).ToArray());

    private static TailDecoder Create(ReadOnlySpan<int> context = default) => new(DecodeBytes, 256, context);

    [Fact]
    public void A_split_character_is_held_back_until_complete()
    {
        var decoder = Create();
        Assert.Equal("a", decoder.Append('a'));
        Assert.Equal("", decoder.Append(0xC3));
        Assert.Equal("é", decoder.Append(0xA9));
        Assert.Equal("", decoder.Append(0xF0));
        Assert.Equal("", decoder.Append(0x9F));
        Assert.Equal("", decoder.Append(0x8E));
        Assert.Equal("🎉", decoder.Append(0x89));
        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void An_invalid_byte_does_not_stall_the_stream()
    {
        var decoder = Create();
        Assert.Equal("", decoder.Append(0xE4));
        // The lead byte can never complete now; the replacement character is final and goes out with the 'a'.
        Assert.Equal("\uFFFDa", decoder.Append('a'));
    }

    [Fact]
    public void An_unfinished_character_comes_out_at_flush()
    {
        var decoder = Create();
        Assert.Equal("x", decoder.Append('x'));
        Assert.Equal("", decoder.Append(0xE4));
        Assert.Equal("\uFFFD", decoder.Flush());
    }

    [Fact]
    public void Random_text_streams_to_exactly_its_decoding()
    {
        var random = new Random(7);
        string[] alphabet = ["a", " ", "é", "你", "🎉", "ß", "\n", "Ж"];
        for (var round = 0; round < 200; round++)
        {
            var text = string.Concat(Enumerable.Range(0, random.Next(0, 400)).Select(_ => alphabet[random.Next(alphabet.Length)]));
            var ids = Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();
            var decoder = Create();
            var output = new StringBuilder();
            foreach (var id in ids)
            {
                var piece = decoder.Append(id);
                Assert.DoesNotContain('\uFFFD', piece);
                output.Append(piece);
            }
            output.Append(decoder.Flush());
            Assert.Equal(text, output.ToString());
        }
    }

    [Fact]
    public void Context_is_decoded_but_never_emitted()
    {
        var context = Encoding.UTF8.GetBytes("prompt text ").Select(b => (int)b).ToArray();
        var decoder = Create(context);
        Assert.Equal("o", decoder.Append('o'));
        Assert.Equal("k", decoder.Append('k'));
    }

    [Fact]
    public void Ids_outside_the_vocabulary_are_rejected()
    {
        Assert.Throws<InferenceServer.Inference.InferenceException>(() => Create().Append(256));
    }
}
