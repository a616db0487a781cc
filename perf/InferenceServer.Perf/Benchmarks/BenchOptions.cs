using System.Globalization;

namespace InferenceServer.Perf;

/// <summary>Options of <c>bench NAME</c>; each benchmark supplies its defaults, the command line overrides them.</summary>
internal sealed record BenchOptions
{
    public static readonly string[] Names = ["mlp", "resnet50", "payload", "overhead", "generate", "kv", "genai"];

    public required string Name { get; init; }
    public int Runs { get; init; } = 3;
    public double? DurationSeconds { get; init; }
    public double WarmupSeconds { get; init; } = 1;
    public double FirstWarmupSeconds { get; init; } = 5;
    public double? EngineSeconds { get; init; }
    public long MaxRequests { get; init; } = 10_000_000;
    public string? Json { get; init; }
    public string? Out { get; init; }
    public string SharedDir { get; init; } = PerfOptions.DefaultSharedDir();
    public string ServerLogLevel { get; init; } = "Warning";
    public IReadOnlyList<int>? Concurrency { get; init; }
    public IReadOnlyList<string>? Protocols { get; init; }
    public IReadOnlyList<(int I, int T)>? Settings { get; init; }
    public IReadOnlyList<(int I, int T)>? RawSettings { get; init; }
    public IReadOnlyList<int>? EngineBatches { get; init; }
    public long? MaxQueueDelayMicroseconds { get; init; }
    public int? MaxBatchSize { get; init; }
    public IReadOnlyList<int>? PreferredBatchSizes { get; init; }
    public IReadOnlyList<int>? Bytes { get; init; }
    public bool SkipUnbatched { get; init; }
    public bool Contention { get; init; }
    public int? MaxTokens { get; init; }
    public string? Baseline { get; init; }
    public string? ServerBuild { get; init; }
    public bool ServersOutOfProcess { get; init; }
    public int Connections { get; init; } = 1;
    public bool H2Load { get; init; }
    public string GrpcClient { get; init; } = GrpcClientKind.Raw;

    /// <summary>kv: the decoder's shape (null: the benchmark's default, 6 layers, d_model 512, 8 heads, 2 KV heads, vocabulary 32,000).</summary>
    public int? Layers { get; init; }
    public int? DModel { get; init; }
    public int? Heads { get; init; }
    public int? KvHeads { get; init; }
    public int? Vocab { get; init; }

    /// <summary>kv: prompt tokens of the throughput cells (default 128).</summary>
    public int? PromptTokens { get; init; }

    /// <summary>kv: the prompt lengths of the context-scaling cells (default 128,1024), their generated tokens and requests per cell.</summary>
    public IReadOnlyList<int>? Contexts { get; init; }
    public int? ContextTokens { get; init; }
    public int? ContextRequests { get; init; }

    /// <summary>kv: where the raw loop's outputs go (default: both, ONNX Runtime's own memory and bound buffers).</summary>
    public IReadOnlyList<KvOutputs>? RawOutputs { get; init; }

    /// <summary>kv: the contexts of the engine's allocation measurement (empty: skipped) and its measured steps.</summary>
    public IReadOnlyList<int>? AllocationContexts { get; init; }
    public int? AllocationSteps { get; init; }

    /// <summary>genai: the model's context_length in genai_config.json (the server's max_model_len; default 4096).</summary>
    public int? ContextLength { get; init; }

    /// <summary>genai: the generation.max_num_batched_tokens values of the chunked-prefill cells (default 24,64,256,2048).</summary>
    public IReadOnlyList<int>? BatchedTokens { get; init; }

    /// <summary>genai: the chunked-prefill cells' running streams, their prompt tokens, and the long prompt's tokens (default 8, 256, 2048).</summary>
    public int? ChunkStreams { get; init; }
    public int? ChunkContext { get; init; }
    public int? LongPrompt { get; init; }

    /// <summary>genai: the prefix-caching cells' shared prefix, distinct suffix and requests per kind and run (default 1024, 16, 5).</summary>
    public int? PrefixTokens { get; init; }
    public int? SuffixTokens { get; init; }
    public int? PrefixRequests { get; init; }

    /// <summary>kv: also run the engine cells with every row joining and leaving together (no ragged rows, as the raw loop's rounds).</summary>
    public bool EngineStatic { get; init; }

    /// <summary>kv, genai: the one stream count of <c>--concurrency</c> (also the raw loops' rows), or <paramref name="fallback"/>.</summary>
    public int Streams(int fallback) => Concurrency switch
    {
        null => fallback,
        [var streams] => streams,
        _ => throw new ArgumentException($"{Name}: --concurrency takes one number, the streams (and the raw loops' rows)"),
    };

    /// <summary>The servers run as processes of their own (published builds): asked for, or implied by a baseline or a published build.</summary>
    public bool OutOfProcess => ServersOutOfProcess || Baseline is not null || ServerBuild is not null;

    public static string Usage() => """
        Usage: dotnet run -c Release --project perf/InferenceServer.Perf -- bench mlp|resnet50|payload|overhead|generate|kv|genai [options]

          --runs N                 repetitions; tables show medians, ratios are taken within each run (default: 3)
          --duration-seconds N     measured seconds per load cell (default per benchmark: mlp 4, resnet50 6, payload 4, overhead 4, generate 6, kv 20, genai 15)
          --engine-seconds N       measured seconds per engine batch size (default: mlp 2, resnet50 4, generate 4; kv: at least this
                                   long per raw cell, in whole rounds, and per engine cell, default 10)
          --warmup-seconds N       unmeasured seconds before every cell (default: 1)
          --first-warmup-seconds N unmeasured seconds before a load cell's first measurement (default: 5)
          --max-requests N         cap on requests per cell (default: 10000000)
          --json FILE              write every run's figures, profiles and checks as JSON
          --out FILE               also write the Markdown report to FILE
          --shared-dir DIR         the shared data folder (resnet50, generate; default: $INFERENCE_SHARED_DIR or ../shared beside the repository)
          --server-log-level LVL   in-process server's log level (default: Warning)
          --concurrency LIST       closed-loop clients (default: mlp 64, resnet50 8, payload 1, overhead 64; generate: streams 1,4,16,64; kv, genai: 16,
                                   also the raw loops' sequences in flight)
          --protocol LIST          grpc, rest-binary, rest-json (default: grpc; payload grpc,rest-binary)
          --settings LIST          engine instances x intra-op threads, e.g. 1x2,2x1 (default: mlp and resnet50 1x2,2x1; payload and overhead 1x2;
                                   generate: one IxT, the server's decode loops x parameters.intra_op_num_threads, default cores x 1;
                                   kv: the served configurations, default 1 x cores and cores x 1; genai: the batching cells' served
                                   configurations, default 1 x cores and cores x 1)
          --raw-settings LIST      generate, kv, genai: the raw decode loops' configurations, parallel loops x intra-op threads (default: every
                                   LxT <= cores, L and T powers of two or the core count; genai: those with L x T = cores; the server's
                                   settings are always added)
          --engine-batches LIST    engine batch sizes (default: mlp 1,4,16,32,64; resnet50 1,2,4,8; generate: the raw decode loop's, 1,4,16,64)
          --max-queue-delay-us N   dynamic_batching max_queue_delay_microseconds (default: 0)
          --max-batch-size N       mlp, resnet50: the served models' max_batch_size (default: mlp 64, resnet50 8)
          --preferred-batch-sizes LIST  mlp, resnet50: dynamic_batching preferred_batch_size (default: none)
          --bytes LIST             payload sizes in bytes, multiples of 4 (default: 602112,7120000)
          --skip-unbatched         mlp: leave out the models without dynamic batching
          --max-tokens N           generate, kv: max_tokens of every completion (default: 128; genai: 64, the batching cells)
          --layers N, --d-model N, --heads N, --kv-heads N, --vocab N
                                   kv, genai: the decoder's shape (default: 6, 512, 8, 2, 32000; smaller for a quick run)
          --prompt-tokens N        kv: prompt tokens of the throughput cells (default: 128; genai: 1024)
          --context-length N       genai: genai_config.json's context_length, the server's max_model_len (default: 4096)
          --batched-tokens LIST    genai: generation.max_num_batched_tokens of the chunked-prefill cells (default: 24,64,256,2048)
          --chunk-streams N        genai: running streams of the chunked-prefill cells (default: 8)
          --chunk-context N        genai: their prompt tokens (default: 256)
          --long-prompt N          genai: the prompt tokens of the one request prefilled among them, max_tokens 1 (default: 2048)
          --prefix-tokens N        genai: the shared system prompt of the prefix-caching cells (default: 1024)
          --suffix-tokens N        genai: each request's distinct suffix after it (default: 16)
          --prefix-requests N      genai: cold and warm requests per prefix-caching cell and run (default: 5)
          --contexts LIST          kv: prompt lengths of the one-stream context-scaling cells (default: 128,1024)
          --context-tokens N       kv: tokens generated per context-scaling request (default: 32)
          --context-requests N     kv: requests (raw: rounds) per context-scaling cell and run, the contexts taking turns (default: 5)
          --raw-outputs LIST       kv: the raw loop's outputs, ort (ONNX Runtime allocates them) and/or bound (preallocated
                                   buffers, as the server's engine binds them) (default: both; the baseline is the best cell)
          --allocation-contexts LIST  kv: contexts of the engine's allocation measurement, or none (default: 128,1024)
          --allocation-steps N     kv: measured decode steps per allocation context (default: 32)
          --engine-static          kv: also run the engine (KvCacheDecoder) cells with every row joining and leaving together,
                                   so no ragged rows: what the padding of rows of different lengths costs
          --baseline REV|DIR       overhead, payload: also measure a baseline server, alternating with the current one run by run
                                   (A/B, B/A, ...): a git revision of this repository (checked out as a detached git worktree in a
                                   temporary folder and published with dotnet publish -c Release) or a folder holding a published
                                   InferenceServer.dll; implies --out-of-process
          --server-build DIR       overhead, payload: the current server from this published folder instead of publishing this tree
          --out-of-process         overhead, payload: run the server(s) and the echo as processes of their own (published
                                   builds), so that the load generator shares only the cores with them
          --connections N          gRPC connections (HTTP/2) per target, the calls spread over them (default: 1); h2load gets the same
          --grpc-client raw|dotnet the harness's gRPC load: raw = its own HTTP/2 client (preallocated frames, no allocation per
                                   call), dotnet = Grpc.Net.Client with a prepared request (default: raw)
          --h2load                 overhead, payload: also measure the echo and every server with h2load (nghttp2-client) as the
                                   client, its 2xx count checked against the target's own success count
          --contention             mlp: also profile the engine (1x2, batch 64) and the echo side by side, ONNX Runtime spinning on/off
        """;

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0 || !Names.Contains(args[0]))
        {
            throw new ArgumentException($"bench needs one of {string.Join(", ", Names)}");
        }
        var o = new BenchOptions { Name = args[0] };
        for (var i = 1; i < args.Count; i++)
        {
            var name = args[i];
            if (name is "--skip-unbatched" or "--contention" or "--out-of-process" or "--h2load" or "--engine-static")
            {
                o = name switch
                {
                    "--engine-static" => o with { EngineStatic = true },
                    "--contention" => o with { Contention = true },
                    "--out-of-process" => o with { ServersOutOfProcess = true },
                    "--h2load" => o with { H2Load = true },
                    _ => o with { SkipUnbatched = true },
                };
                continue;
            }
            (name, var value) = Flags.Next(args, ref i);
            o = name switch
            {
                "--runs" => o with { Runs = (int)Number(name, value, 1, 20) },
                "--duration-seconds" => o with { DurationSeconds = Number(name, value, 0.1, 600) },
                "--engine-seconds" => o with { EngineSeconds = Number(name, value, 0.1, 600) },
                "--warmup-seconds" => o with { WarmupSeconds = Number(name, value, 0, 60) },
                "--first-warmup-seconds" => o with { FirstWarmupSeconds = Number(name, value, 0, 120) },
                "--max-requests" => o with { MaxRequests = (long)Number(name, value, 1, 100_000_000) },
                "--json" => o with { Json = value },
                "--out" => o with { Out = value },
                "--shared-dir" => o with { SharedDir = value },
                "--server-log-level" => o with { ServerLogLevel = value },
                "--concurrency" => o with { Concurrency = Ints(name, value, 1, 1024) },
                "--protocol" => o with { Protocols = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(p => PerfOptions.AllProtocols.Contains(p) ? p : throw new ArgumentException($"--protocol: unknown '{p}'")).Distinct().ToArray() },
                "--settings" => o with { Settings = value.Split(',').Select(s => ParseSetting(name, s)).ToArray() },
                "--raw-settings" => o with { RawSettings = value.Split(',').Select(s => ParseSetting(name, s)).ToArray() },
                "--engine-batches" => o with { EngineBatches = Ints(name, value, 1, 1024) },
                "--max-queue-delay-us" => o with { MaxQueueDelayMicroseconds = (long)Number(name, value, 0, 1_000_000) },
                "--max-batch-size" => o with { MaxBatchSize = (int)Number(name, value, 1, 1024) },
                "--preferred-batch-sizes" => o with { PreferredBatchSizes = Ints(name, value, 1, 1024) },
                "--max-tokens" => o with { MaxTokens = (int)Number(name, value, 2, 100_000) },
                "--baseline" => o with { Baseline = value },
                "--server-build" => o with { ServerBuild = Directory.Exists(value) ? Path.GetFullPath(value) : throw new ArgumentException($"--server-build: no folder {value}") },
                "--connections" => o with { Connections = (int)Number(name, value, 1, 64) },
                "--grpc-client" => o with { GrpcClient = GrpcClientKind.Parse(value) },
                "--layers" => o with { Layers = (int)Number(name, value, 1, 128) },
                "--d-model" => o with { DModel = (int)Number(name, value, 2, 16384) },
                "--heads" => o with { Heads = (int)Number(name, value, 1, 256) },
                "--kv-heads" => o with { KvHeads = (int)Number(name, value, 1, 256) },
                "--vocab" => o with { Vocab = (int)Number(name, value, 16, 1_000_000) },
                "--prompt-tokens" => o with { PromptTokens = (int)Number(name, value, 1, 100_000) },
                "--contexts" => o with { Contexts = Ints(name, value, 1, 100_000) },
                "--context-tokens" => o with { ContextTokens = (int)Number(name, value, 2, 100_000) },
                "--context-requests" => o with { ContextRequests = (int)Number(name, value, 1, 100) },
                "--raw-outputs" => o with { RawOutputs = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(v => Enum.TryParse<KvOutputs>(v, ignoreCase: true, out var k) && Enum.IsDefined(k) ? k : throw new ArgumentException($"--raw-outputs: '{v}' is not ort or bound")).Distinct().ToArray() },
                "--allocation-contexts" => o with { AllocationContexts = value == "none" ? [] : Ints(name, value, 1, 100_000) },
                "--context-length" => o with { ContextLength = (int)Number(name, value, 64, 1_000_000) },
                "--batched-tokens" => o with { BatchedTokens = Ints(name, value, 2, 1_000_000) },
                "--chunk-streams" => o with { ChunkStreams = (int)Number(name, value, 1, 256) },
                "--chunk-context" => o with { ChunkContext = (int)Number(name, value, 1, 100_000) },
                "--long-prompt" => o with { LongPrompt = (int)Number(name, value, 1, 1_000_000) },
                "--prefix-tokens" => o with { PrefixTokens = (int)Number(name, value, 1, 1_000_000) },
                "--suffix-tokens" => o with { SuffixTokens = (int)Number(name, value, 1, 100_000) },
                "--prefix-requests" => o with { PrefixRequests = (int)Number(name, value, 1, 100) },
                "--allocation-steps" => o with { AllocationSteps = (int)Number(name, value, 1, 10_000) },
                "--bytes" => o with { Bytes = Ints(name, value, 4, 200_000_000).Select(b => b % 4 == 0 ? b : throw new ArgumentException("--bytes: sizes must be multiples of 4 (FP32)")).ToArray() },
                _ => throw new ArgumentException($"unknown option {name}"),
            };
        }
        if ((o.OutOfProcess || o.H2Load) && o.Name is not ("overhead" or "payload"))
        {
            throw new ArgumentException("--baseline, --server-build, --out-of-process and --h2load apply to bench overhead and bench payload");
        }
        if (o.H2Load && !global::InferenceServer.Perf.H2Load.Available())
        {
            throw new ArgumentException("--h2load: h2load not found (apt-get install nghttp2-client)");
        }
        return o;
    }

    private static (int, int) ParseSetting(string name, string value)
    {
        var parts = value.Trim().Split('x');
        return parts.Length == 2 && int.TryParse(parts[0], out var i) && int.TryParse(parts[1], out var t) && i is >= 1 and <= 8 && t is >= 1 and <= 64
            ? (i, t)
            : throw new ArgumentException($"{name}: '{value}' is not INSTANCESxTHREADS (e.g. 1x2)");
    }

    private static int[] Ints(string name, string value, int min, int max) =>
        value.Split(',').Select(v => (int)Number(name, v, min, max)).Distinct().ToArray();

    private static double Number(string name, string value, double min, double max) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n
            : throw new ArgumentException($"{name} must be a number from {min} to {max}, not '{value}'");
}
