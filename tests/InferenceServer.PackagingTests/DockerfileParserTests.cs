namespace InferenceServer.Tests.Packaging;

/// <summary>The Dockerfile parser DockerfileTests rely on, on small inputs whose reading Docker defines.</summary>
public sealed class DockerfileParserTests
{
    private const string Sample = """
        # syntax=docker/dockerfile:1
        ARG FLAVOR=small
        ARG TAG

        FROM alpine:3.20 AS base-small
        ENV A=1 \
            # a comment inside a continuation is dropped
            B="two words"
        FROM debian:12 AS base-large
        ENV A=large

        from base-${FLAVOR} AS final
        ENV C=${A}-${B:-none} D=${UNSET:-fallback} E=${A:+set}
        EXPOSE 1 \
               2
        USER 7:8
        HEALTHCHECK --interval=5s --start-period=1m CMD ["probe", "--now"]
        ENTRYPOINT ["run", "it"]
        CMD echo [not json
        """;

    [Fact]
    public void Stages_global_args_and_continuations_are_read_as_docker_reads_them()
    {
        var file = Dockerfile.Parse(Sample);
        Assert.Equal(["base-small", "base-large", "final"], file.Stages.Select(s => s.Name));
        Assert.Equal("small", file.GlobalArgDefaults["FLAVOR"]);
        Assert.Equal("", file.GlobalArgDefaults["TAG"]);
        var final = file.Stage("final");
        Assert.Equal("base-${FLAVOR}", final.From);
        Assert.Equal(["1", "2"], final.All("EXPOSE").Single().Words);
        Assert.Equal(14, final.All("EXPOSE").Single().Line);
    }

    [Fact]
    public void Build_arguments_choose_the_stage_chain_and_the_environment_follows_it()
    {
        var file = Dockerfile.Parse(Sample);
        var small = file.For(new Dictionary<string, string>());
        Assert.Equal("alpine:3.20", small.BaseImage);
        Assert.Equal("1", small.Environment["A"]);
        Assert.Equal("1-two words", small.Environment["C"]);
        Assert.Equal("fallback", small.Environment["D"]);
        Assert.Equal("set", small.Environment["E"]);
        Assert.Equal("7:8", small.User);
        Assert.Equal(["1", "2"], small.ExposedPorts);

        var large = file.For(new Dictionary<string, string> { ["FLAVOR"] = "large" });
        Assert.Equal("debian:12", large.BaseImage);
        Assert.Equal("large-none", large.Environment["C"]);
        Assert.False(large.Environment.ContainsKey("B"));
    }

    [Fact]
    public void Flags_exec_form_and_the_shell_form_fallback()
    {
        var image = Dockerfile.Parse(Sample).For(new Dictionary<string, string>());
        var healthcheck = image.Healthcheck!;
        Assert.Equal("5s", healthcheck.Flags["interval"]);
        Assert.Equal("1m", healthcheck.Flags["start-period"]);
        Assert.Equal("CMD [\"probe\", \"--now\"]", healthcheck.Body);
        Assert.Equal(["run", "it"], image.Entrypoint!.ExecForm);
        // Not valid JSON: Docker runs it with a shell, and so it reads here.
        Assert.Null(Dockerfile.Parse(Sample).Stages[^1].All("CMD").Single().ExecForm);
    }

    [Theory]
    [InlineData("ARG X=1", "no FROM instruction")]
    [InlineData("ENV A=1\nFROM x:1", "only ARG may come before the first FROM")]
    [InlineData("FROM x:1\nRUN a \\", "ends inside a line continuation")]
    [InlineData("FROM x:1 AS", "expected FROM image [AS name]")]
    public void Malformed_files_are_rejected_with_the_reason(string text, string reason)
    {
        var error = Assert.Throws<FormatException>(() => Dockerfile.Parse(text));
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dockerignore_patterns_match_as_docker_matches_them()
    {
        var ignore = DockerIgnore.Parse(["# comment", "**/bin/", "/secret", "docs/*.md", "!docs/keep.md", "*.tmp"]);
        Assert.True(ignore.Excludes("bin/x"));
        Assert.True(ignore.Excludes("a/b/bin/c/d"));
        Assert.False(ignore.Excludes("a/binary/c"));
        Assert.True(ignore.Excludes("secret"));
        Assert.True(ignore.Excludes("secret/file"));
        Assert.False(ignore.Excludes("a/secret"));
        Assert.True(ignore.Excludes("docs/a.md"));
        Assert.False(ignore.Excludes("docs/keep.md"));
        Assert.False(ignore.Excludes("docs/sub/a.md"));
        Assert.True(ignore.Excludes("x.tmp"));
        Assert.False(ignore.Excludes("dir/x.tmp"));
    }
}
