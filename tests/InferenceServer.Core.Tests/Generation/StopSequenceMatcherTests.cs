using System.Text;
using InferenceServer.Generation;
using InferenceServer.Inference;

namespace InferenceServer.Tests.Core.Generation;

public sealed class StopSequenceMatcherTests
{
    [Fact]
    public void A_stop_split_across_deltas_is_held_back_and_never_emitted()
    {
        var matcher = new StopSequenceMatcher(["END"]);
        Assert.Equal(StopResult.Continue, matcher.Append("Hello E", out var emit));
        Assert.Equal("Hello ", emit);
        Assert.Equal(StopResult.Continue, matcher.Append("N", out emit));
        Assert.Equal("", emit);
        Assert.Equal(StopResult.Stopped, matcher.Append("D and more", out emit));
        Assert.Equal("", emit);
        Assert.Equal("END", matcher.MatchedStop);
        Assert.Equal(StopResult.Stopped, matcher.Append("later", out emit));
        Assert.Equal("", emit);
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void Text_before_a_stop_in_the_same_delta_is_emitted()
    {
        var matcher = new StopSequenceMatcher(["\n\n", "###"]);
        Assert.Equal(StopResult.Stopped, matcher.Append("answer###rest", out var emit));
        Assert.Equal("answer", emit);
        Assert.Equal("###", matcher.MatchedStop);
    }

    [Fact]
    public void A_false_start_is_released_and_flush_returns_the_held_back_tail()
    {
        var matcher = new StopSequenceMatcher(["END"]);
        matcher.Append("E", out var emit);
        Assert.Equal("", emit);
        matcher.Append("x E", out emit);
        Assert.Equal("Ex ", emit);
        Assert.False(matcher.IsStopped);
        Assert.Equal("E", matcher.Flush());
    }

    [Fact]
    public void The_first_stop_to_complete_wins_however_the_text_is_split()
    {
        var whole = new StopSequenceMatcher(["abcd", "bc"]);
        whole.Append("xabcd", out var emit);
        Assert.Equal("xa", emit);
        Assert.Equal("bc", whole.MatchedStop);

        var split = new StopSequenceMatcher(["abcd", "bc"]);
        var output = new StringBuilder();
        foreach (var c in "xabcd")
        {
            if (split.Append(c.ToString(), out emit) == StopResult.Stopped)
            {
                output.Append(emit);
                break;
            }
            output.Append(emit);
        }
        Assert.Equal("xa", output.ToString());
    }

    [Fact]
    public void Without_stops_text_passes_straight_through()
    {
        var matcher = new StopSequenceMatcher(null);
        Assert.Equal(StopResult.Continue, matcher.Append("anything END", out var emit));
        Assert.Equal("anything END", emit);
    }

    [Fact]
    public void At_most_four_non_empty_stops()
    {
        var tooMany = Assert.Throws<InferenceException>(() => new StopSequenceMatcher(["a", "b", "c", "d", "e"]));
        Assert.Equal(InferenceErrorKind.InvalidArgument, tooMany.Kind);
        Assert.Contains("at most 4", tooMany.Message);
        var empty = Assert.Throws<InferenceException>(() => new StopSequenceMatcher(["a", ""]));
        Assert.Contains("stop[1]", empty.Message);
        _ = new StopSequenceMatcher(["a", "b", "c", "d"]);
    }

    [Fact]
    public void Streamed_output_equals_the_text_cut_at_the_first_completed_stop()
    {
        var random = new Random(1234);
        for (var round = 0; round < 3000; round++)
        {
            var alphabet = round % 2 == 0 ? "ab" : "abc";
            string Word(int min, int max) => new(Enumerable.Range(0, random.Next(min, max + 1)).Select(_ => alphabet[random.Next(alphabet.Length)]).ToArray());
            var stops = Enumerable.Range(0, random.Next(1, 5)).Select(_ => Word(1, 4)).ToArray();
            var text = Word(0, 30);
            var matcher = new StopSequenceMatcher(stops);
            var output = new StringBuilder();
            var stopped = false;
            for (var at = 0; at < text.Length && !stopped;)
            {
                var length = Math.Min(random.Next(0, 5), text.Length - at);
                stopped = matcher.Append(text.Substring(at, length), out var emit) == StopResult.Stopped;
                output.Append(emit);
                at += length;
            }
            if (!stopped)
            {
                output.Append(matcher.Flush());
            }
            var (expected, expectStop) = Reference(text, stops);
            Assert.True(expected == output.ToString(), $"stops [{string.Join(",", stops)}] text '{text}': expected '{expected}', got '{output}'");
            Assert.Equal(expectStop, stopped);
        }
    }

    // Reads the text one character at a time and stops as soon as the text read ends with a stop sequence.
    private static (string Text, bool Stopped) Reference(string text, string[] stops)
    {
        for (var end = 1; end <= text.Length; end++)
        {
            var longest = stops.Where(s => text[..end].EndsWith(s, StringComparison.Ordinal)).MaxBy(s => s.Length);
            if (longest is not null)
            {
                return (text[..(end - longest.Length)], true);
            }
        }
        return (text, false);
    }
}
