using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Google.Protobuf;
using Grpc.Core;
using InferenceServer.Lifecycle;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>Tests that measure the whole process (its memory) run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessWideCollection
{
    public const string Name = "Process-wide measurements";
}

/// <summary>
/// Thousands of generated malformed requests over REST and gRPC against the sample repository: every one is answered
/// with a client error (never a 5xx, INTERNAL or UNKNOWN), and the server is still ready, still answers correctly and
/// holds no more memory afterwards. The generator is seeded (INFERENCE_FUZZ_SEED overrides it); failures print the seed.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class FuzzTests
{
    private const int RestCases = 7_000;
    private const int GrpcCases = 3_000;
    private const int RawGrpcCases = 300;
    private const int Concurrency = 16;

    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("INFERENCE_FUZZ_SEED"), out var seed) ? seed : 20261124;

    private static readonly string[] Models = ["simple", "linear", "string_normalizer", "bigram_lm"];

    /// <summary>Model names no repository holds: traversal, encodings, control characters, invalid UTF-8, huge.</summary>
    private static readonly string[] OddNames =
    [
        "..", "../../etc/passwd", "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2f..%2fetc%2fpasswd", "%2F", "%00", "simple%00",
        "%C3%28", "%FF%FE", "%ED%A0%80", "con", "nul", "simple%2f..%2flinear", "%20", "~", "*", "%25", new string('a', 5000),
        "%E2%80%AE", "simple;rm", "simple'--", "$(id)", "simple\\..\\linear", ".hidden", "-", "%c0%ae%c0%ae",
    ];

    [Fact]
    public async Task Malformed_requests_get_client_errors_and_leave_the_server_serving()
    {
        await using var server = await RunningServer.StartAsync(Paths.SampleModels,
            "--max-request-bytes", (1024 * 1024).ToString(System.Globalization.CultureInfo.InvariantCulture), "--access-log", "false");
        var random = new Random(Seed);
        var rest = Enumerable.Range(0, RestCases).Select(_ => RestCase(random)).ToList();
        var grpc = Enumerable.Range(0, GrpcCases).Select(_ => GrpcCase(random)).ToList();
        var rawGrpc = Enumerable.Range(0, RawGrpcCases).Select(_ => RandomBytes(random, 0, 512)).ToList();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Concurrency }) { BaseAddress = server.Http.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        using var h2 = new HttpClient(new SocketsHttpHandler()) { Timeout = TimeSpan.FromSeconds(60) };

        // A first slice warms up the JIT, the pools and the connections; the memory baseline is taken after it.
        await RunRestAsync(http, rest.Take(500), failures);
        await AssertServesCorrectlyAsync(server);
        var baseline = GC.GetTotalMemory(forceFullCollection: true);

        await RunRestAsync(http, rest.Skip(500), failures);
        await Parallel.ForEachAsync(grpc, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (c, _) =>
        {
            var problem = await SendGrpcAsync(server, c);
            if (problem is not null)
            {
                failures.Enqueue(problem);
            }
        });
        await Parallel.ForEachAsync(rawGrpc, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (body, _) =>
        {
            var problem = await SendRawGrpcAsync(h2, server.Endpoints.GrpcPort, body);
            if (problem is not null)
            {
                failures.Enqueue(problem);
            }
        });

        Assert.True(failures.IsEmpty,
            $"seed {Seed}: {failures.Count} of {RestCases + GrpcCases + RawGrpcCases} malformed requests were not answered with a client error; first ones:\n" +
            string.Join("\n", failures.GroupBy(f => f[..f.IndexOf(' ', f.IndexOf(' ') + 1)]).Select(g => $"{g.Count()} x {g.First()}").Take(20)));

        // Still ready, still right, and nothing left behind: no request in flight, no queue, memory back near its baseline.
        using (var ready = await server.Http.GetAsync("/v2/health/ready"))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        }
        await AssertServesCorrectlyAsync(server);
        var coordinator = (DrainCoordinator)server.Services.GetService(typeof(DrainCoordinator))!;
        var until = DateTime.UtcNow.AddSeconds(30);
        while (coordinator.ActiveRequests > 0 || server.Repository.Versions().Any(v => v.QueueLength > 0))
        {
            Assert.True(DateTime.UtcNow < until, $"seed {Seed}: {coordinator.ActiveRequests} request(s) still in flight after the fuzzing ended");
            await Task.Delay(20);
        }
        var after = GC.GetTotalMemory(forceFullCollection: true);
        // Generous: the point is that 10,000 requests leave nothing proportional to them behind (a leak of even 10 KB each is 100 MB).
        Assert.True(after - baseline < 48L * 1024 * 1024,
            $"seed {Seed}: managed memory grew from {baseline / 1024 / 1024} MB to {after / 1024 / 1024} MB over the fuzzing");
    }

    private static async Task AssertServesCorrectlyAsync(RunningServer server)
    {
        var a = Enumerable.Range(0, 16).ToArray();
        var b = Enumerable.Range(0, 16).Select(i => 100 - 3 * i).ToArray();
        WireTensor Int32s(string name, int[] values) => new(name, "INT32", [1, 16], values.SelectMany(BitConverter.GetBytes).ToArray());
        foreach (var encoding in Enum.GetValues<TensorEncoding>())
        {
            var outputs = await InferClient.InferAsync(server, encoding, "simple", [Int32s("INPUT0", a), Int32s("INPUT1", b)]);
            var sum = outputs.Single(o => o.Name == "OUTPUT0");
            var difference = outputs.Single(o => o.Name == "OUTPUT1");
            Assert.Equal(a.Zip(b, (x, y) => x + y).SelectMany(BitConverter.GetBytes).ToArray(), sum.Data);
            Assert.Equal(a.Zip(b, (x, y) => x - y).SelectMany(BitConverter.GetBytes).ToArray(), difference.Data);
        }
    }

    private static async Task RunRestAsync(HttpClient http, IEnumerable<RestRequest> cases, System.Collections.Concurrent.ConcurrentQueue<string> failures) =>
        await Parallel.ForEachAsync(cases, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (c, _) =>
        {
            var problem = await SendRestAsync(http, c);
            if (problem is not null)
            {
                failures.Enqueue(problem);
            }
        });

    // ---- REST ----

    private sealed record RestRequest(string Kind, HttpMethod Method, string Path, byte[]? Body, string? HeaderLength);

    private static async Task<string?> SendRestAsync(HttpClient http, RestRequest c)
    {
        // The path goes out as generated (no dot-segment removal or unescaping), as an attacker would send it.
        var uri = new Uri(http.BaseAddress + c.Path.TrimStart('/'), new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true });
        using var message = new HttpRequestMessage(c.Method, uri);
        if (c.Body is not null)
        {
            message.Content = new ByteArrayContent(c.Body);
            message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }
        if (c.HeaderLength is not null)
        {
            message.Headers.TryAddWithoutValidation("Inference-Header-Content-Length", c.HeaderLength);
        }
        try
        {
            using var response = await http.SendAsync(message, HttpCompletionOption.ResponseContentRead);
            var status = (int)response.StatusCode;
            // A 504 is the right answer to a request that asked for a timeout too short to be served in.
            if (status >= 500 && !(status == 504 && c.Body is not null && Encoding.UTF8.GetString(c.Body).Contains("\"timeout\"", StringComparison.Ordinal)))
            {
                var text = await response.Content.ReadAsStringAsync();
                return $"REST {c.Kind} {c.Method} {Excerpt(c.Path)} header={c.HeaderLength} body={Excerpt(c.Body)} -> {status} {Excerpt(text)}";
            }
            return null;
        }
        catch (HttpRequestException e)
        {
            return $"REST {c.Kind} {c.Method} {Excerpt(c.Path)} body={Excerpt(c.Body)} -> connection failed: {e.Message}";
        }
    }

    private static RestRequest RestCase(Random r)
    {
        var model = Pick(r, Models);
        return r.Next(14) switch
        {
            0 => new("random bytes", HttpMethod.Post, Infer(model), RandomBytes(r, 0, 2048), r.Next(3) == 0 ? RandomHeaderLength(r, 2048) : null),
            1 => Truncated(r, model),
            2 => new("deep nesting", HttpMethod.Post, Infer(model), DeepJson(r), null),
            3 or 4 => new("wrong types", HttpMethod.Post, Infer(model), Utf8(Mutate(r, InferBody(model))), null),
            5 => new("shape", HttpMethod.Post, Infer(model), Utf8(BadShape(r, model)), null),
            6 => BinaryCase(r, model),
            7 => new("odd model name", Pick(r, [HttpMethod.Post, HttpMethod.Get]), OddPath(r), r.Next(2) == 0 ? Utf8(InferBody("simple")) : null, null),
            8 => new("invalid UTF-8", HttpMethod.Post, Infer(model), InvalidUtf8(r, InferBody(model)), null),
            9 => new("KServe v1", HttpMethod.Post, $"/v1/models/{(r.Next(4) == 0 ? Pick(r, OddNames) : model)}:predict", KServeBody(r), null),
            10 => new("OpenAI", HttpMethod.Post, Pick(r, ["/v1/completions", "/v1/chat/completions", "/openai/v1/completions", "/openai/v1/chat/completions"]), OpenAiBody(r), null),
            11 => new("generate", HttpMethod.Post, $"/v2/models/{(r.Next(4) == 0 ? Pick(r, OddNames) : "bigram_lm")}/{Pick(r, ["generate", "generate_stream"])}", GenerateBody(r), null),
            12 => new("parameters", HttpMethod.Post, Infer(model), Utf8(BadParameters(r, model)), null),
            _ => new("repository", HttpMethod.Post, Pick(r, ["/v2/repository/index", "/v2/models/simple/stats", "/v2/models/" + Pick(r, OddNames) + "/config"]),
                r.Next(2) == 0 ? RandomBytes(r, 0, 64) : Utf8(Mutate(r, new JsonObject { ["ready"] = true })), null),
        };
    }

    private static string Infer(string model) => $"/v2/models/{model}/infer";

    private static JsonObject InferBody(string model) => model switch
    {
        "simple" => new JsonObject
        {
            ["id"] = "fuzz",
            ["inputs"] = new JsonArray(Input("INPUT0", "INT32", [1, 16], Enumerable.Range(0, 16).Select(i => (JsonNode)i)),
                Input("INPUT1", "INT32", [1, 16], Enumerable.Range(0, 16).Select(i => (JsonNode)i))),
            ["outputs"] = new JsonArray(new JsonObject { ["name"] = "OUTPUT0" }),
        },
        "linear" => new JsonObject { ["inputs"] = new JsonArray(Input("features", "FP32", [1, 4], [1.5, 2, 3, 4])) },
        _ => new JsonObject { ["inputs"] = new JsonArray(Input("INPUT0", "BYTES", [1], ["Hello"])), ["parameters"] = new JsonObject { ["binary_data_output"] = true } },
    };

    private static JsonObject Input(string name, string datatype, long[] shape, IEnumerable<JsonNode> data) => new()
    {
        ["name"] = name,
        ["datatype"] = datatype,
        ["shape"] = new JsonArray(shape.Select(d => (JsonNode)d).ToArray()),
        ["data"] = new JsonArray(data.ToArray()),
    };

    private static JsonObject Input(string name, string datatype, long[] shape, IEnumerable<double> data) =>
        Input(name, datatype, shape, data.Select(d => (JsonNode)d));

    private static JsonObject Input(string name, string datatype, long[] shape, IEnumerable<string> data) =>
        Input(name, datatype, shape, data.Select(d => (JsonNode)d));

    private static RestRequest Truncated(Random r, string model)
    {
        var body = Utf8(InferBody(model));
        return new("truncated JSON", HttpMethod.Post, Infer(model), body[..r.Next(body.Length)], null);
    }

    private static byte[] DeepJson(Random r)
    {
        var depth = Pick(r, [33, 64, 65, 257, 1000, 5000, 20000]);
        var open = Pick(r, ["[", "{\"a\":"]);
        var close = open == "[" ? "]" : "}";
        var inner = string.Concat(Enumerable.Repeat(open, depth)) + "1" + string.Concat(Enumerable.Repeat(close, depth));
        return r.Next(3) switch
        {
            0 => Encoding.UTF8.GetBytes(inner),
            1 => Encoding.UTF8.GetBytes($"{{\"inputs\":[{{\"name\":\"INPUT0\",\"datatype\":\"INT32\",\"shape\":[1,16],\"data\":{inner}}}]}}"),
            _ => Encoding.UTF8.GetBytes($"{{\"parameters\":{{\"x\":{inner}}},\"inputs\":[]}}"),
        };
    }

    /// <summary>Replaces, removes or retypes one value somewhere in the document.</summary>
    private static JsonNode Mutate(Random r, JsonNode root)
    {
        var nodes = new List<JsonNode>();
        Collect(root, nodes);
        var target = Pick(r, nodes.ToArray());
        if (target == root)
        {
            return RandomValue(r);
        }
        var parent = target.Parent!;
        switch (parent)
        {
            case JsonObject o:
                var key = o.First(p => p.Value == target).Key;
                if (r.Next(4) == 0)
                {
                    o.Remove(key);
                }
                else
                {
                    o[key] = RandomValue(r);
                }
                break;
            case JsonArray a:
                a[a.IndexOf(target)] = RandomValue(r);
                break;
        }
        if (r.Next(5) == 0 && root is JsonObject obj)
        {
            obj[Pick(r, ["inputs", "outputs", "parameters", "id", "shape", "data", "name"])] = RandomValue(r);
        }
        return root;
    }

    private static void Collect(JsonNode node, List<JsonNode> into)
    {
        into.Add(node);
        switch (node)
        {
            case JsonObject o:
                foreach (var (_, v) in o.ToList())
                {
                    if (v is not null)
                    {
                        Collect(v, into);
                    }
                }
                break;
            case JsonArray a:
                foreach (var v in a.ToList())
                {
                    if (v is not null)
                    {
                        Collect(v, into);
                    }
                }
                break;
        }
    }

    private static JsonNode RandomValue(Random r) => r.Next(14) switch
    {
        0 => JsonValue.Create(r.Next() - int.MaxValue / 2),
        1 => JsonValue.Create(-1),
        2 => JsonValue.Create(long.MaxValue),
        3 => JsonValue.Create(1e308),
        4 => JsonValue.Create(-0.5),
        5 => JsonValue.Create(""),
        6 => JsonValue.Create(Pick(r, ["FP32", "TYPE_FP32", "BF16", "BYTES", "INT128", "fp32", "NaN", "Infinity", "INPUT0", "features"])),
        7 => JsonValue.Create(true),
        8 => new JsonArray(),
        9 => new JsonObject(),
        10 => new JsonArray(RandomValue(r), RandomValue(r)),
        11 => new JsonObject { [Pick(r, ["binary_data_size", "timeout", "priority", "binary_data", "classification"])] = RandomValue(r) },
        12 => JsonValue.Create(new string('x', r.Next(1, 3000))),
        _ => JsonValue.Create(ulong.MaxValue),
    };

    private static string BadShape(Random r, string model)
    {
        long[] shape = Pick(r, new long[][]
        {
            [1L << 40], [-1, 16], [1L << 32, 1L << 32, 16], [long.MaxValue, 2], [0, 16], [], [9, 16], [1, 16, 1, 1, 1],
            [3037000500, 3037000500], [1, -16], [long.MinValue], Enumerable.Repeat(2L, 70).ToArray(), [1L << 26, 16], [4, 1L << 62],
        });
        var dims = r.Next(6) == 0 ? "[1.5, \"16\", null]" : "[" + string.Join(",", shape) + "]";
        var (name, type) = model switch { "simple" => ("INPUT0", "INT32"), "linear" => ("features", "FP32"), _ => ("INPUT0", "BYTES") };
        var data = r.Next(2) == 0 ? "[1,2,3]" : "[]";
        var binary = r.Next(3) == 0 ? ",\"parameters\":{\"binary_data_size\":" + r.Next(0, 100) + "}" : "";
        return $"{{\"inputs\":[{{\"name\":\"{name}\",\"datatype\":\"{type}\",\"shape\":{dims}{(binary.Length > 0 ? binary : ",\"data\":" + data)}}}]}}";
    }

    private static RestRequest BinaryCase(Random r, string model)
    {
        var binary = RandomBytes(r, 0, 256);
        var declared = r.Next(4) switch
        {
            0 => binary.Length,
            1 => binary.Length + r.Next(1, 100),
            2 => -r.Next(1, 100),
            _ => r.Next(0, 1 << 20),
        };
        var json = Encoding.UTF8.GetBytes(
            $"{{\"inputs\":[{{\"name\":\"INPUT0\",\"datatype\":\"{Pick(r, ["INT32", "BYTES", "FP16", "BF16", "BOOL"])}\",\"shape\":[1,{r.Next(-2, 40)}],\"parameters\":{{\"binary_data_size\":{declared}}}}}]}}");
        var body = json.Concat(binary).ToArray();
        var header = r.Next(3) == 0 ? RandomHeaderLength(r, body.Length) : json.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return new("binary", HttpMethod.Post, Infer(model), body, header);
    }

    private static string RandomHeaderLength(Random r, int bodyLength) => r.Next(9) switch
    {
        0 => "-1",
        1 => "abc",
        2 => "99999999999999999999",
        3 => (bodyLength + r.Next(1, 1000)).ToString(System.Globalization.CultureInfo.InvariantCulture),
        4 => "0",
        5 => " 12",
        6 => "0x10",
        7 => "",
        _ => r.Next(0, Math.Max(1, bodyLength)).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };

    private static string OddPath(Random r)
    {
        var name = Pick(r, OddNames);
        return r.Next(5) switch
        {
            0 => $"/v2/models/{name}/infer",
            1 => $"/v2/models/{name}/versions/{Pick(r, ["-1", "0", "99999999999999999999", "..", "%00", "1.5", "abc"])}/infer",
            2 => $"/v2/models/{name}/ready",
            3 => $"/v2/models/simple/versions/{name}/config",
            _ => $"/v2/models/{name}/stats",
        };
    }

    private static byte[] InvalidUtf8(Random r, JsonObject body)
    {
        var text = body.ToJsonString();
        var bytes = Encoding.UTF8.GetBytes(text).ToList();
        // Inside a string (after an opening quote), where the JSON reader must validate it.
        var quotes = Enumerable.Range(0, bytes.Count).Where(i => bytes[i] == (byte)'"').ToArray();
        var at = Pick(r, quotes) + 1;
        byte[][] bad = [[0xFF], [0xC3, 0x28], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC0, 0xAF], [0xE2, 0x82]];
        bytes.InsertRange(at, Pick(r, bad));
        return bytes.ToArray();
    }

    private static byte[] KServeBody(Random r)
    {
        JsonNode body = r.Next(3) switch
        {
            0 => new JsonObject { ["instances"] = new JsonArray(new JsonArray(1.0, 2.0, 3.0, 4.0), new JsonArray(1.0, 2.0)) },
            1 => new JsonObject { ["instances"] = new JsonArray(new JsonObject { ["INPUT0"] = new JsonArray(Enumerable.Range(0, 16).Select(i => (JsonNode)i).ToArray()) }) },
            _ => new JsonObject { ["instances"] = new JsonArray(new JsonArray(1.0, 2.0, 3.0, 4.0)) },
        };
        return r.Next(4) == 0 ? RandomBytes(r, 0, 128) : Utf8(Mutate(r, body));
    }

    private static byte[] OpenAiBody(Random r)
    {
        var body = new JsonObject
        {
            ["model"] = r.Next(5) == 0 ? Pick(r, OddNames) : Pick(r, ["bigram_lm", "simple"]),
            ["max_tokens"] = r.Next(1, 6),
        };
        if (r.Next(2) == 0)
        {
            body["prompt"] = "To be";
        }
        else
        {
            body["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hi" });
        }
        if (r.Next(3) == 0)
        {
            body["stream"] = true;
        }
        return r.Next(8) == 0 ? RandomBytes(r, 0, 128) : Utf8(r.Next(6) == 0 ? body : Mutate(r, body));
    }

    private static byte[] GenerateBody(Random r)
    {
        var body = new JsonObject { ["text_input"] = "To be", ["parameters"] = new JsonObject { ["max_tokens"] = r.Next(1, 6) } };
        return r.Next(6) == 0 ? RandomBytes(r, 0, 128) : Utf8(Mutate(r, body));
    }

    private static string BadParameters(Random r, string model)
    {
        var body = InferBody(model);
        body["parameters"] = new JsonObject
        {
            [Pick(r, ["timeout", "priority", "binary_data_output", "sequence_id", "max_tokens"])] = Pick<JsonNode>(r,
            [
                JsonValue.Create(-1), JsonValue.Create(long.MaxValue), JsonValue.Create(10_000_000_000_000L), JsonValue.Create(1e300), JsonValue.Create(5_184_000_000_000L),
                JsonValue.Create("soon"), JsonValue.Create(0), JsonValue.Create(1), JsonValue.Create(int.MaxValue), new JsonArray(), JsonValue.Create(false),
            ]),
        };
        return body.ToJsonString();
    }

    // ---- gRPC ----

    private static readonly string[] DataTypes = ["INT32", "FP32", "BYTES", "FP16", "BF16", "BOOL", "INT8", "UINT64", "FP64", "INT128", "", "TYPE_FP32", "fp32", "STRING"];

    private static ModelInferRequest GrpcCase(Random r)
    {
        var model = r.Next(6) == 0 ? Pick(r, OddNames.Concat(["", "bigram_lm"]).ToArray()) : Pick(r, ["simple", "linear", "string_normalizer"]);
        var request = new ModelInferRequest { ModelName = model, ModelVersion = r.Next(8) == 0 ? Pick(r, ["-1", "0", "x", "99999999999999999999", "2"]) : "", Id = Pick(r, ["fuzz", "fuzz-", "fuzz--"]) };
        var raw = r.Next(2) == 0;
        var inputs = r.Next(6) == 0 ? 0 : r.Next(1, 4);
        for (var i = 0; i < inputs; i++)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor
            {
                Name = r.Next(6) == 0 ? Pick(r, ["", "INPUT0", "INPUT0", "x", OddNames[r.Next(OddNames.Length)]]) : (i == 0 ? "INPUT0" : "INPUT1"),
                Datatype = r.Next(3) == 0 ? Pick(r, DataTypes) : "INT32",
            };
            if (model == "linear" && r.Next(2) == 0)
            {
                tensor.Name = "features";
                tensor.Datatype = "FP32";
            }
            var shape = r.Next(3) == 0
                ? Pick(r, new long[][] { [1L << 40], [-1, 16], [1L << 32, 1L << 32, 16], [long.MaxValue, 2], [0, 16], [], [9, 16], [3037000500, 3037000500], [long.MinValue, 1] })
                : [1, r.Next(4) == 0 ? r.Next(0, 40) : 16];
            if (r.Next(10) != 0)
            {
                tensor.Shape.Add(shape);
            }
            if (raw)
            {
                if (r.Next(8) != 0)
                {
                    request.RawInputContents.Add(ByteString.CopyFrom(RandomBytes(r, 0, r.Next(2) == 0 ? 64 : 200)));
                }
                if (r.Next(8) == 0)
                {
                    tensor.Contents = new InferTensorContents { IntContents = { 1, 2, 3 } };
                }
            }
            else if (r.Next(10) != 0)
            {
                tensor.Contents = RandomContents(r);
            }
            if (r.Next(8) == 0)
            {
                tensor.Parameters["binary_data_size"] = new InferParameter { Int64Param = r.NextInt64(-5, long.MaxValue) };
            }
            request.Inputs.Add(tensor);
        }
        if (r.Next(6) == 0)
        {
            request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = Pick(r, ["OUTPUT0", "OUTPUT0", "nope", "", "probabilities"]) });
            request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = Pick(r, ["OUTPUT0", "OUTPUT1", "logits"]) });
            if (r.Next(3) == 0)
            {
                request.Outputs[0].Parameters["classification"] = new InferParameter { Int64Param = 3 };
            }
        }
        if (r.Next(5) == 0)
        {
            request.Parameters[Pick(r, ["timeout", "priority", "binary_data_output", "max_tokens"])] = Pick(r, new[]
            {
                new InferParameter { Int64Param = -1 }, new InferParameter { Int64Param = long.MaxValue }, new InferParameter { Int64Param = 10_000_000_000_000L }, new InferParameter { Int64Param = 5_184_000_000_000L },
                new InferParameter { Uint64Param = ulong.MaxValue }, new InferParameter { StringParam = "soon" }, new InferParameter { DoubleParam = double.NaN },
                new InferParameter { BoolParam = true }, new InferParameter(),
            });
        }
        return request;
    }

    private static InferTensorContents RandomContents(Random r)
    {
        var c = new InferTensorContents();
        var count = r.Next(0, 40);
        switch (r.Next(8))
        {
            case 0: c.IntContents.AddRange(Enumerable.Range(0, count).Select(_ => r.Next(int.MinValue, int.MaxValue))); break;
            case 1: c.Fp32Contents.AddRange(Enumerable.Range(0, count).Select(_ => (float)r.NextDouble())); break;
            case 2: c.BytesContents.AddRange(Enumerable.Range(0, count).Select(_ => ByteString.CopyFrom(RandomBytes(r, 0, 16)))); break;
            case 3: c.BoolContents.AddRange(Enumerable.Range(0, count).Select(_ => r.Next(2) == 0)); break;
            case 4: c.Int64Contents.AddRange(Enumerable.Range(0, count).Select(_ => r.NextInt64())); break;
            case 5: c.UintContents.AddRange(Enumerable.Range(0, count).Select(_ => (uint)r.Next())); break;
            case 6: c.IntContents.AddRange(Enumerable.Range(0, 16)); break;
            default: c.Fp64Contents.AddRange(Enumerable.Range(0, count).Select(_ => r.NextDouble())); c.IntContents.Add(1); break;
        }
        return c;
    }

    private static async Task<string?> SendGrpcAsync(RunningServer server, ModelInferRequest request)
    {
        try
        {
            // Some calls carry a deadline far in the future (60 days, past what a .NET timer can wait).
            DateTime? deadline = request.Id.Length % 3 == 0 ? DateTime.UtcNow.AddDays(60) : null;
            await server.Grpc.ModelInferAsync(request, deadline: deadline);
            return null;
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Internal or StatusCode.Unknown or StatusCode.Unavailable or StatusCode.DataLoss or StatusCode.Unimplemented)
        {
            return $"gRPC {Excerpt(request.ToString())} -> {e.StatusCode} {e.Status.Detail}";
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>
    /// Random bytes as a gRPC message body (framed or not), straight over HTTP/2: the server must answer with a gRPC
    /// status on a healthy HTTP/2 response. Which status is grpc-dotnet's choice, made before any interceptor runs:
    /// UNKNOWN for a message that does not parse, INTERNAL for an incomplete frame.
    /// </summary>
    private static async Task<string?> SendRawGrpcAsync(HttpClient h2, int port, byte[] payload)
    {
        var framed = payload.Length > 0 && payload[0] % 2 == 0
            ? new byte[] { 0, 0, 0, (byte)(payload.Length >> 8), (byte)payload.Length }.Concat(payload).ToArray()
            : payload;
        using var message = new HttpRequestMessage(HttpMethod.Post, $"http://127.0.0.1:{port}/inference.GRPCInferenceService/ModelInfer")
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(framed),
        };
        message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        message.Headers.TryAddWithoutValidation("TE", "trailers");
        try
        {
            using var response = await h2.SendAsync(message);
            await response.Content.ReadAsByteArrayAsync();
            var status = response.TrailingHeaders.TryGetValues("grpc-status", out var values) ? values.First()
                : response.Headers.TryGetValues("grpc-status", out var early) ? early.First() : null;
            return response.StatusCode != HttpStatusCode.OK || status is null
                ? $"raw gRPC {Excerpt(framed)} -> HTTP {(int)response.StatusCode} grpc-status {status ?? "(none)"}"
                : null;
        }
        catch (HttpRequestException e)
        {
            return $"raw gRPC {Excerpt(framed)} -> connection failed: {e.Message}";
        }
    }

    // ---- helpers ----

    private static T Pick<T>(Random r, T[] items) => items[r.Next(items.Length)];

    private static byte[] RandomBytes(Random r, int min, int max)
    {
        var bytes = new byte[r.Next(min, max)];
        r.NextBytes(bytes);
        return bytes;
    }

    private static byte[] Utf8(JsonNode node) => Encoding.UTF8.GetBytes(node.ToJsonString());

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static string Excerpt(string text) => text.Length > 300 ? text[..300] + "..." : text;

    private static string Excerpt(byte[]? bytes) => bytes is null ? "(none)" : Excerpt(Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, 400)));
}
