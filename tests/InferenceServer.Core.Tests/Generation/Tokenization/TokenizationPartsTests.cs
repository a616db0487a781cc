using System.Text.RegularExpressions;
using InferenceServer.Generation.Tokenization;

namespace InferenceServer.Tests.Core.Generation.Tokenization;

/// <summary>Parts of the pipeline on the examples of the Rust library's documentation.</summary>
public sealed class TokenizationPartsTests
{
    [Theory]
    [InlineData("Removed", "the|final|countdown")]
    [InlineData("Isolated", "the|-|final|-|-|countdown")]
    [InlineData("MergedWithPrevious", "the-|final-|-|countdown")]
    [InlineData("MergedWithNext", "the|-final|-|-countdown")]
    [InlineData("Contiguous", "the|-|final|--|countdown")]
    public void Split_behaviours_match_the_documented_example(string behaviorName, string expected)
    {
        var behavior = Enum.Parse<SplitBehavior>(behaviorName);
        var pieces = new List<Piece>();
        TextSplits.Split(new Piece("the-final--countdown", true), new Regex("-"), behavior, invert: false, pieces);
        Assert.Equal(expected, string.Join("|", pieces.Select(p => p.Text)));
        Assert.True(pieces[0].AtStart);
        Assert.All(pieces.Skip(1), p => Assert.False(p.AtStart));
    }

    [Fact]
    public void Regexes_see_whole_code_points()
    {
        // Rust's [^\r\n\p{L}\p{N}]?\p{L}+ takes the emoji whole; a UTF-16 regex alone would split its surrogates.
        var regex = new Regex(@"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}");
        Assert.Equal(["😀abc", "𝟏", " 𠀀x"], TextSplits.Matches(regex, "😀abc𝟏 𠀀x").Select(m => "😀abc𝟏 𠀀x"[m.Start..m.End]));
    }

    [Theory]
    [InlineData(@"[^\s\p{L}]?+\p{L}++x{1,3}+", @"(?>[^\s\p{L}]?)(?>\p{L}+)(?>x{1,3})")]
    [InlineData(@"(?i:'s|'t)|(ab)*+c?", @"(?i:'s|'t)|(?>(ab)*)c?")]
    [InlineData(@"\s+(?!\S)|a{2}?", @"\s+(?!\S)|a{2}?")]
    public void Possessive_quantifiers_become_atomic_groups(string onig, string dotnet)
    {
        Assert.Equal(dotnet, TextSplits.PossessiveToAtomic(onig));
        var regex = TextSplits.Compile(onig, "test");
        Assert.Equal(dotnet, regex.ToString() == onig ? dotnet : regex.ToString());
    }

    [Fact]
    public void The_precompiled_charsmap_replaces_graphemes_then_characters()
    {
        var blob = PrecompiledCharsmap.Build(new Dictionary<string, string> { ["ﬁ"] = "fi", ["Ａ"] = "A", ["e\u0301"] = "é", ["\u200B"] = "" });
        var normalizer = new PrecompiledNormalizer(blob);
        Assert.Equal("fine A é x", normalizer.Normalize("ﬁne Ａ e\u0301 \u200Bx"));
        Assert.Equal("plain", normalizer.Normalize("plain"));
    }

    [Fact]
    public void Bpe_merges_lowest_rank_first()
    {
        var vocabulary = new Dictionary<string, int> { ["a"] = 0, ["b"] = 1, ["c"] = 2, ["ab"] = 3, ["bc"] = 4, ["abc"] = 5 };
        var model = new BpeModel(vocabulary, [("b", "c"), ("a", "b"), ("a", "bc")], null, null, null, false, false, false);
        var ids = new List<int>();
        model.Tokenize("abc", ids);
        Assert.Equal([5], ids);
        ids.Clear();
        model.Tokenize("abab", ids);
        Assert.Equal([3, 3], ids);
    }
}
