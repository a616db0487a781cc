using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Docs;

/// <summary>The sample repository (<c>models/</c>), served as the README's examples expect it.</summary>
public sealed class ReadmeServerFixture : IAsyncLifetime
{
    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await RunningServer.StartAsync(Paths.SampleModels);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>
/// The README's shell sessions are run, in order, against the real server on the sample repository, and each
/// command's output must be the one the README shows (ids, timestamps, durations and <c>created</c> masked, see
/// <see cref="ShownOutput"/>). The sessions are read from README.md itself (<see cref="ShellExamples"/>); a
/// command the tests cannot run fails them, naming it.
/// </summary>
public sealed class ReadmeExampleTests(ReadmeServerFixture fixture) : IClassFixture<ReadmeServerFixture>
{
    private static IReadOnlyList<ShellExample> ReadmeSessions()
    {
        var (examples, problems) = ShellExamples.Parse(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, "README.md")));
        Assert.True(problems.Count == 0, "README.md: " + string.Join("\n", problems));
        return examples;
    }

    [Fact]
    public void Every_readme_command_is_one_the_tests_run()
    {
        var examples = ReadmeSessions();

        var refusals = examples.Select(e => ShellExampleRunner.Plan(e).Refusal).OfType<string>().ToList();

        Assert.True(refusals.Count == 0, "README.md: " + string.Join("\n", refusals));
        // The examples the README promises: REST with curl, gRPC with the infer command line, the OpenAI API.
        var steps = examples.Select(e => ShellExampleRunner.Plan(e).Step).ToList();
        Assert.Contains(steps, s => s is CurlStep curl && curl.Arguments.Any(a => a.Contains("/v2/models/simple/infer", StringComparison.Ordinal)));
        Assert.Contains(steps, s => s is InferStep infer && infer.Arguments is ["predict", "simple", ..] && infer.Arguments.Contains("--grpc"));
        Assert.Contains(steps, s => s is CurlStep curl && curl.Arguments.Any(a => a.Contains("/v1/chat/completions", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Every_readme_example_prints_what_the_readme_shows()
    {
        var examples = ReadmeSessions();
        var runner = new ShellExampleRunner(Paths.NewTempDirectory("readme"), fixture.Server.Endpoints);
        var failures = new List<string>();

        foreach (var example in examples)
        {
            var (step, refusal) = ShellExampleRunner.Plan(example);
            if (step is null)
            {
                failures.Add(refusal!);
                continue;
            }
            var result = await runner.RunAsync(step);
            if (result.ExitCode != 0 || result.Error.Length > 0)
            {
                failures.Add($"{example}: exit code {result.ExitCode}, standard error: {result.Error}");
                continue;
            }
            if (ShownOutput.Difference(example.Output, result.Output) is { } difference)
            {
                failures.Add($"{example}: {difference}\nprinted:\n{result.Output}");
                continue;
            }
            // The comparison that passed must fail for an output the README does not show.
            foreach (var (change, mutated) in ShownOutput.Mutations(example.Output))
            {
                if (ShownOutput.Difference(mutated, result.Output) is null)
                {
                    failures.Add($"{example}: the comparison missed a changed output ({change})");
                }
            }
        }

        Assert.True(failures.Count == 0, string.Join("\n\n", failures));
        Assert.True(examples.Count >= 5, $"README.md has {examples.Count} examples");
    }

    [Fact]
    public void A_changed_output_fails_the_comparison()
    {
        var checkedOutputs = 0;
        foreach (var example in ReadmeSessions().Where(e => e.Output.Count > 0))
        {
            var shown = string.Join("\n", example.Output);
            Assert.Null(ShownOutput.Difference(example.Output, shown));
            Assert.Null(ShownOutput.Difference(example.Output, shown + "\n\n"));
            foreach (var (change, mutated) in ShownOutput.Mutations(example.Output))
            {
                Assert.True(ShownOutput.Difference(mutated, shown) is not null, $"{example}: {change} went unnoticed");
            }
            checkedOutputs++;
        }
        Assert.True(checkedOutputs >= 4, $"{checkedOutputs} outputs checked");
    }

    [Fact]
    public void Only_ids_timestamps_durations_and_created_are_masked()
    {
        string[] shown = ["""{"id":"chatcmpl-0a8547dc639d4e4ab59bfa2dd48fef1b","created":1796566347,"model":"bigram_lm","timestamp":"2025-01-02T03:04:05.678Z","duration_ms":1.5}"""];

        Assert.Null(ShownOutput.Difference(shown,
            """{"id":"chatcmpl-ffffffffffffffffffffffffffff0000","created":1,"model":"bigram_lm","timestamp":"2026-12-31T23:59:59Z","duration_ms":250}"""));
        foreach (var changed in new[]
        {
            """{"id":"cmpl-ffffffffffffffffffffffffffff0000","created":1,"model":"bigram_lm","timestamp":"2026-12-31T23:59:59Z","duration_ms":250}""",
            """{"id":"chatcmpl-request-7","created":1,"model":"bigram_lm","timestamp":"2026-12-31T23:59:59Z","duration_ms":250}""",
            """{"id":"chatcmpl-ffffffffffffffffffffffffffff0000","created":"1","model":"bigram_lm","timestamp":"2026-12-31T23:59:59Z","duration_ms":250}""",
            """{"id":"chatcmpl-ffffffffffffffffffffffffffff0000","created":1,"model":"linear","timestamp":"2026-12-31T23:59:59Z","duration_ms":250}""",
            """{"id":"chatcmpl-ffffffffffffffffffffffffffff0000","created":1,"model":"bigram_lm","timestamp":"yesterday","duration_ms":250}""",
            """{"id":"chatcmpl-ffffffffffffffffffffffffffff0000","created":1,"model":"bigram_lm","timestamp":"2026-12-31T23:59:59Z","duration_ms":null}""",
            """{"id":"chatcmpl-ffffffffffffffffffffffffffff0000","created":1,"model":"bigram_lm","timestamp":"2026-12-31T23:59:59Z","duration_ms":250,"more":0}""",
        })
        {
            Assert.True(ShownOutput.Difference(shown, changed) is not null, changed);
        }
        // Any other member is compared as it is, numbers and hex strings included.
        Assert.NotNull(ShownOutput.Difference(["""{"total_tokens":38,"digest":"0a8547dc639d4e4ab59bfa2dd48fef1b"}"""], """{"total_tokens":39,"digest":"0a8547dc639d4e4ab59bfa2dd48fef1b"}"""));
        Assert.NotNull(ShownOutput.Difference(["""{"total_tokens":38,"digest":"0a8547dc639d4e4ab59bfa2dd48fef1b"}"""], """{"total_tokens":38,"digest":"ffffffffffffffffffffffffffffffff"}"""));
        Assert.NotNull(ShownOutput.Difference(["a", "b"], "a\n\nb"));
    }

    [Fact]
    public void Sessions_are_read_with_continuations_quoted_lines_and_here_documents()
    {
        const string markdown = """
            Text with `$ not a command`.

            ```sh
            dotnet run --project server/InferenceServer   # a block without '$ ' lines is not a session
            ```

            ```sh
            $ curl -s localhost:8000/a \
                -H 'x-tenant-id: acme'
            {"ready":true}

            $ curl -s localhost:8000/b -d '{
              "text": "it'"'"'s $HOME, not expanded"}'
            line one
              line two

            $ cat > request.json <<'EOF'
            {"a": "$ not a prompt"}
            $ still the body
            EOF
            $ infer predict simple --json request.json --grpc localhost:8001   # trailing comment
            ```
            """;

        var (examples, problems) = ShellExamples.Parse(markdown);

        Assert.Empty(problems);
        Assert.Equal(4, examples.Count);
        Assert.Equal(["curl", "-s", "localhost:8000/a", "-H", "x-tenant-id: acme"], examples[0].Read.Command!.Words);
        Assert.Equal(["{\"ready\":true}"], examples[0].Output);
        Assert.Equal(8, examples[0].Line);
        Assert.Equal(["curl", "-s", "localhost:8000/b", "-d", "{\n  \"text\": \"it's $HOME, not expanded\"}"], examples[1].Read.Command!.Words);
        Assert.Equal(["line one", "  line two"], examples[1].Output);
        Assert.Equal(["cat"], examples[2].Read.Command!.Words);
        Assert.Equal("request.json", examples[2].Read.Command!.StdoutFile);
        Assert.Equal("{\"a\": \"$ not a prompt\"}\n$ still the body\n", examples[2].Read.Command!.HereDocument);
        Assert.Empty(examples[2].Output);
        Assert.Equal(["infer", "predict", "simple", "--json", "request.json", "--grpc", "localhost:8001"], examples[3].Read.Command!.Words);
        Assert.All(examples, e => Assert.Null(ShellExampleRunner.Plan(e).Refusal));
    }

    [Fact]
    public void A_command_the_tests_cannot_run_fails_naming_it()
    {
        const string markdown = """
            ```sh
            $ grpcurl -plaintext localhost:8001 list
            inference.GRPCInferenceService
            $ curl -s localhost:8000/v2/models | jq .
            $ curl -s "localhost:8000/v2/models/$MODEL"
            $ dotnet run --project server/InferenceServer -- --help
            $ cat request.json > copy.json
            $ curl -s localhost:8000/v2 -d '{"never": "closed"}
            ```
            Text before the first command:
            ```console
            some text
            $ curl -s localhost:8000/v2
            ```
            """;

        var (examples, problems) = ShellExamples.Parse(markdown);
        var refusals = examples.Select(e => ShellExampleRunner.Plan(e).Refusal).ToList();

        Assert.Equal(7, examples.Count);
        Assert.Equal(2, problems.Count);
        Assert.Contains("line 8: the command 'curl -s localhost:8000/v2 -d '{\"never\": \"closed\"}' is not complete", problems[0], StringComparison.Ordinal);
        Assert.StartsWith("line 12: 'some text' comes before", problems[1], StringComparison.Ordinal);
        Assert.StartsWith("line 2: the tests do not know how to run '$ grpcurl -plaintext localhost:8001 list': no runner for 'grpcurl'", refusals[0], StringComparison.Ordinal);
        Assert.StartsWith("line 4: the tests do not know how to run '$ curl -s localhost:8000/v2/models | jq .': the operator '|'", refusals[1], StringComparison.Ordinal);
        Assert.StartsWith("line 5: the tests do not know how to run '$ curl -s \"localhost:8000/v2/models/$MODEL\"': '$' inside double quotes", refusals[2], StringComparison.Ordinal);
        Assert.Contains("'server/InferenceServer' is not the infer command line's project", refusals[3], StringComparison.Ordinal);
        Assert.Contains("only 'cat > FILE <<EOF' may redirect", refusals[4], StringComparison.Ordinal);
        Assert.StartsWith("line 8: ", refusals[5], StringComparison.Ordinal);
        Assert.Null(refusals[6]);
    }
}
