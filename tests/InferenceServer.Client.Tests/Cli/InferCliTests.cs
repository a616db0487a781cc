using System.Text;
using System.Text.Json;
using InferenceServer.Client;
using InferenceServer.Client.Cli;
using InferenceServer.Client.Cli.Tensors;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Client;

/// <summary>The sample models (<c>simple</c>, <c>bigram_lm</c>) served for the <c>infer</c> command line tests.</summary>
public sealed class InferCliServerFixture : IAsyncLifetime
{
    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await RunningServer.StartAsync(Paths.SampleModels);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary><c>infer</c> end to end against a real server, in process (RunAsync with captured output).</summary>
public sealed class InferCliTests(InferCliServerFixture fixture) : IClassFixture<InferCliServerFixture>
{
    private static readonly int[] A = Enumerable.Range(0, 16).Select(i => i * 3 - 7).ToArray();
    private static readonly int[] B = Enumerable.Range(0, 16).Select(i => 100 - i * i).ToArray();

    private string[] Target(string protocol) => protocol == "grpc"
        ? ["--grpc", $"127.0.0.1:{fixture.Server.Endpoints.GrpcPort}"]
        : ["--url", $"http://127.0.0.1:{fixture.Server.Endpoints.HttpPort}"];

    private sealed record Run(int ExitCode, string Output, string Error, RecordingWriter Writer);

    private async Task<Run> InferAsync(string protocol, params string[] args)
    {
        var output = new RecordingWriter();
        var error = new StringWriter();
        var code = await InferCommandLine.RunAsync([.. args, .. Target(protocol)], output, error);
        return new Run(code, output.ToString(), error.ToString(), output);
    }

    private static Tensor Int32Tensor(string name, int[] values, params long[] shape) => Tensor.Create(name, values, shape);

    private static int[] ReadInt32Npy(string path)
    {
        var tensor = NpyFormat.Read(path, "x");
        Assert.Equal("INT32", tensor.Datatype);
        Assert.Equal([1L, 16L], tensor.Shape);
        return Enumerable.Range(0, 16).Select(i => BitConverter.ToInt32(tensor.ToRawBytes(), i * 4)).ToArray();
    }

    private static void AssertSimpleOutputs(string directory, int[] a, int[] b)
    {
        Assert.Equal(a.Zip(b, (x, y) => x + y), ReadInt32Npy(Path.Combine(directory, "OUTPUT0.npy")));
        Assert.Equal(a.Zip(b, (x, y) => x - y), ReadInt32Npy(Path.Combine(directory, "OUTPUT1.npy")));
    }

    private static void AssertNoStackTrace(Run run)
    {
        Assert.DoesNotContain("   at ", run.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", run.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rest", false)]
    [InlineData("rest", true)]
    [InlineData("grpc", false)]
    public async Task Predict_simple_from_npy_files_saves_the_sum_and_difference(string protocol, bool binary)
    {
        var dir = Paths.NewTempDirectory("infer-npy");
        // INPUT0 through the writer; INPUT1 as a hand-made file laid out per the NumPy specification.
        NpyFormat.Write(Path.Combine(dir, "a.npy"), Int32Tensor("INPUT0", A, 1, 16));
        await File.WriteAllBytesAsync(Path.Combine(dir, "b.npy"),
            InferCliNpyTests.HandMadeNpy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 16), }", InferCliNpyTests.Int32Bytes(B)));
        var outputs = Path.Combine(dir, "out");

        var run = await InferAsync(protocol, ["predict", "simple", "--input", $"INPUT0={dir}/a.npy", "--input", $"INPUT1={dir}/b.npy", "--output-dir", outputs, .. binary ? new[] { "--binary" } : []]);

        Assert.True(run.ExitCode == 0, run.Error);
        AssertSimpleOutputs(outputs, A, B);
        Assert.Contains($"OUTPUT0", run.Output, StringComparison.Ordinal);
        Assert.Contains(string.Join(" ", A.Zip(B, (x, y) => x + y)), run.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task Predict_simple_from_json_prints_json_outputs(string protocol)
    {
        var dir = Paths.NewTempDirectory("infer-json");
        var map = Path.Combine(dir, "map.json");
        await File.WriteAllTextAsync(map, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["INPUT0"] = new { datatype = "INT32", shape = new[] { 1, 16 }, data = A },
            ["INPUT1"] = new { datatype = "INT32", shape = new[] { 1, 16 }, data = new[] { B[..8], B[8..] } },
        }));
        var kserve = Path.Combine(dir, "request.json");
        await File.WriteAllTextAsync(kserve, JsonSerializer.Serialize(new
        {
            inputs = new object[]
            {
                new { name = "INPUT0", datatype = "INT32", shape = new[] { 1, 16 }, data = A },
                new { name = "INPUT1", datatype = "INT32", shape = new[] { 1, 16 }, data = B },
            },
            outputs = new[] { new { name = "OUTPUT1" } },
        }));

        var fromMap = await InferAsync(protocol, "predict", "simple", "--json", map, "--format", "json");
        var fromRequest = await InferAsync(protocol, "predict", "simple", "--input", kserve, "--format", "json");

        Assert.True(fromMap.ExitCode == 0, fromMap.Error);
        Assert.True(fromRequest.ExitCode == 0, fromRequest.Error);
        var all = JsonDocument.Parse(fromMap.Output).RootElement.GetProperty("outputs").EnumerateArray().ToDictionary(o => o.GetProperty("name").GetString()!);
        Assert.Equal(A.Zip(B, (x, y) => x + y), all["OUTPUT0"].GetProperty("data").EnumerateArray().Select(v => v.GetInt32()));
        Assert.Equal(A.Zip(B, (x, y) => x - y), all["OUTPUT1"].GetProperty("data").EnumerateArray().Select(v => v.GetInt32()));
        var requested = JsonDocument.Parse(fromRequest.Output).RootElement.GetProperty("outputs").EnumerateArray().ToList();
        Assert.Equal("OUTPUT1", Assert.Single(requested).GetProperty("name").GetString());
    }

    [Theory]
    [InlineData("rest", false)]
    [InlineData("rest", true)]
    [InlineData("grpc", false)]
    public async Task Predict_strings_from_a_hand_made_unicode_npy_and_saves_them_as_npy(string protocol, bool binary)
    {
        var dir = Paths.NewTempDirectory("infer-strings");
        string[] words = ["Hello World", "ÉTÉ"];
        var cells = new byte[words.Length * 11 * 4];
        for (var w = 0; w < words.Length; w++)
        {
            for (var c = 0; c < words[w].Length; c++)
            {
                BitConverter.GetBytes((int)words[w][c]).CopyTo(cells, (w * 11 + c) * 4);
            }
        }
        var input = Path.Combine(dir, "text.npy");
        await File.WriteAllBytesAsync(input, InferCliNpyTests.HandMadeNpy(1, "{'descr': '<U11', 'fortran_order': False, 'shape': (2,), }", cells));
        var outputs = Path.Combine(dir, "out");

        // A lone .npy names the model's only input (string_normalizer: "text").
        var run = await InferAsync(protocol, ["predict", "string_normalizer", "--input", input, "--output-dir", outputs, .. binary ? new[] { "--binary" } : []]);

        Assert.True(run.ExitCode == 0, run.Error);
        var normalized = NpyFormat.Read(Path.Combine(outputs, "normalized.npy"), "normalized");
        Assert.Equal(["hello world", "été"], normalized.ToByteArrays().Select(e => Encoding.UTF8.GetString(e)));
        Assert.Contains("hello world été", run.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task Generate_streams_pieces_as_they_arrive_and_ends_with_the_whole_text(string protocol)
    {
        string[] args = ["generate", "bigram_lm", "ROMEO:", "--max-tokens", "24", "--temperature", "0"];

        var whole = await InferAsync(protocol, args);
        var streamed = await InferAsync(protocol, [.. args, "--stream"]);

        Assert.True(whole.ExitCode == 0, whole.Error);
        Assert.True(streamed.ExitCode == 0, streamed.Error);
        Assert.True(whole.Output.Trim().Length > 0, "no text generated");
        Assert.Equal(whole.Output, streamed.Output);
        // Streamed: the text reached the writer in several pieces, each flushed, before the final newline.
        Assert.True(streamed.Writer.NonEmptyWrites >= 3, $"only {streamed.Writer.NonEmptyWrites} writes");
        Assert.True(streamed.Writer.Flushes >= 3, $"only {streamed.Writer.Flushes} flushes");
        Assert.True(whole.Writer.NonEmptyWrites <= 2, "the whole text should be one write");
    }

    [Fact]
    public async Task Batch_run_over_a_folder_writes_each_result_and_counts_a_bad_file_without_stopping()
    {
        var dir = Paths.NewTempDirectory("infer-batch");
        var inputs = Directory.CreateDirectory(Path.Combine(dir, "inputs")).FullName;
        var expected = new Dictionary<string, (int[] A, int[] B)>();
        for (var n = 0; n < 4; n++)
        {
            var a = A.Select(x => x + n).ToArray();
            var b = B.Select(x => x * (n + 1)).ToArray();
            expected[$"req{n}"] = (a, b);
            if (n % 2 == 0)
            {
                // A subfolder: one NAME.npy per input.
                var folder = Directory.CreateDirectory(Path.Combine(inputs, $"req{n}")).FullName;
                NpyFormat.Write(Path.Combine(folder, "INPUT0.npy"), Int32Tensor("INPUT0", a, 1, 16));
                NpyFormat.Write(Path.Combine(folder, "INPUT1.npy"), Int32Tensor("INPUT1", b, 1, 16));
            }
            else
            {
                // A JSON file: a map of the inputs.
                await File.WriteAllTextAsync(Path.Combine(inputs, $"req{n}.json"), JsonSerializer.Serialize(new Dictionary<string, object>
                {
                    ["INPUT0"] = new { datatype = "INT32", shape = new[] { 1, 16 }, data = a },
                    ["INPUT1"] = new { datatype = "INT32", shape = new[] { 1, 16 }, data = b },
                }));
            }
        }
        await File.WriteAllTextAsync(Path.Combine(inputs, "broken.npy"), "this is not a NumPy file");
        var outputs = Path.Combine(dir, "out");

        var run = await InferAsync("rest", "predict", "simple", "--input-dir", inputs, "--output-dir", outputs, "--concurrency", "2");

        Assert.Equal(1, run.ExitCode);
        foreach (var (name, (a, b)) in expected)
        {
            AssertSimpleOutputs(Path.Combine(outputs, name), a, b);
        }
        Assert.False(Directory.Exists(Path.Combine(outputs, "broken")));
        Assert.Contains("broken: ", run.Error, StringComparison.Ordinal);
        Assert.Contains("not a NumPy .npy file", run.Error, StringComparison.Ordinal);
        Assert.Contains("5/5 done, 4 ok, 1 failed", run.Output, StringComparison.Ordinal);
        AssertNoStackTrace(run);
    }

    [Theory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task Bad_input_is_exit_code_2_and_a_failed_request_exit_code_1_with_a_message(string protocol)
    {
        var dir = Paths.NewTempDirectory("infer-bad");
        var good = Path.Combine(dir, "good.npy");
        NpyFormat.Write(good, Int32Tensor("INPUT0", A, 1, 16));
        var int64 = Path.Combine(dir, "int64.npy");
        NpyFormat.Write(int64, Tensor.FromRaw("INPUT1", "INT64", [1, 16], new byte[16 * 8]));

        var missing = await InferAsync(protocol, "predict", "simple", "--input", $"INPUT0={dir}/nope.npy", "--input", $"INPUT1={good}");
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("input file not found", missing.Error, StringComparison.Ordinal);
        AssertNoStackTrace(missing);

        var wrongType = await InferAsync(protocol, "predict", "simple", "--input", $"INPUT0={good}", "--input", $"INPUT1={int64}");
        Assert.Equal(2, wrongType.ExitCode);
        Assert.Contains("input INPUT1 is INT64 but model simple expects INT32", wrongType.Error, StringComparison.Ordinal);
        AssertNoStackTrace(wrongType);

        var unknownModel = await InferAsync(protocol, "predict", "no_such_model", "--input", $"INPUT0={good}");
        Assert.Equal(1, unknownModel.ExitCode);
        Assert.Contains("no_such_model", unknownModel.Error, StringComparison.Ordinal);
        AssertNoStackTrace(unknownModel);

        var badOption = await InferAsync(protocol, "predict", "simple", "--input", $"INPUT0={good}", "--timeout", "-3");
        Assert.Equal(2, badOption.ExitCode);
        Assert.Contains("--timeout must be a positive number", badOption.Error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rest")]
    [InlineData("grpc")]
    public async Task Health_models_and_metadata_describe_the_server(string protocol)
    {
        var health = await InferAsync(protocol, "health", "--model", "simple");
        Assert.True(health.ExitCode == 0, health.Error);
        Assert.Contains("live yes, ready yes", health.Output, StringComparison.Ordinal);
        Assert.Contains("model simple: ready yes", health.Output, StringComparison.Ordinal);

        var models = await InferAsync(protocol, "models");
        Assert.True(models.ExitCode == 0, models.Error);
        Assert.Contains(models.Output.Split('\n'), line => line.StartsWith("simple ", StringComparison.Ordinal) && line.Contains("READY", StringComparison.Ordinal));
        Assert.Contains(models.Output.Split('\n'), line => line.StartsWith("bigram_lm ", StringComparison.Ordinal));

        var metadata = await InferAsync(protocol, "metadata", "simple", "--format", "json");
        Assert.True(metadata.ExitCode == 0, metadata.Error);
        var inputs = JsonDocument.Parse(metadata.Output).RootElement.GetProperty("inputs").EnumerateArray()
            .Select(i => $"{i.GetProperty("name").GetString()}:{i.GetProperty("datatype").GetString()}");
        Assert.Equal(["INPUT0:INT32", "INPUT1:INT32"], inputs);
    }

    [Fact]
    public async Task Unreachable_server_is_exit_code_1_with_a_message()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        // Port 1 on loopback: nothing listens there.
        var code = await InferCommandLine.RunAsync(["health", "--url", "http://127.0.0.1:1", "--retries", "0"], output, error);
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>A StringWriter that counts its writes and flushes, to see streaming happen.</summary>
    private sealed class RecordingWriter : StringWriter
    {
        public int NonEmptyWrites { get; private set; }

        public int Flushes { get; private set; }

        public override void Write(string? value)
        {
            if (!string.IsNullOrEmpty(value) && value != NewLine)
            {
                NonEmptyWrites++;
            }
            base.Write(value);
        }

        public override Task WriteAsync(string? value)
        {
            Write(value);
            return Task.CompletedTask;
        }

        public override Task WriteLineAsync(string? value)
        {
            Write(value);
            Write(NewLine);
            return Task.CompletedTask;
        }

        public override Task WriteLineAsync()
        {
            Write(NewLine);
            return Task.CompletedTask;
        }

        public override Task FlushAsync()
        {
            Flushes++;
            return Task.CompletedTask;
        }

        public override Task FlushAsync(CancellationToken cancellationToken) => FlushAsync();
    }
}
