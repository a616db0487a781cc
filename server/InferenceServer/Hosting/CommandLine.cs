using System.Collections;

namespace InferenceServer.Hosting;

/// <summary>
/// The server's command-line flags and their environment-variable twins, translated to configuration keys (which
/// appsettings.json and INFERENCE_Section__Key variables can also set).
/// </summary>
public static class CommandLine
{
    /// <summary>One flag: its name, the environment variable that sets the same thing, the configuration key, and help.</summary>
    public sealed record Flag(string Name, string Environment, string Key, string Help, bool Repeatable = false);

    /// <summary>Every flag the server takes.</summary>
    public static readonly IReadOnlyList<Flag> Flags =
    [
        new("--model-repository", "INFERENCE_MODEL_REPOSITORY", "Repository:Path", "model repository directory (default: models)"),
        new("--http-port", "INFERENCE_HTTP_PORT", "Server:HttpPort", "REST port (default 8000)"),
        new("--grpc-port", "INFERENCE_GRPC_PORT", "Server:GrpcPort", "gRPC port (default 8001)"),
        new("--metrics-port", "INFERENCE_METRICS_PORT", "Server:MetricsPort", "metrics and admin port (default 8002)"),
        new("--bind-address", "INFERENCE_BIND_ADDRESS", "Server:BindAddress", "address to listen on (default 0.0.0.0)"),
        new("--max-request-bytes", "INFERENCE_MAX_REQUEST_BYTES", "Server:MaxRequestBytes", "largest REST body (default 268435456)"),
        new("--grpc-max-message-bytes", "INFERENCE_GRPC_MAX_MESSAGE_BYTES", "Server:GrpcMaxMessageBytes", "largest gRPC message (default 268435456)"),
        new("--default-timeout", "INFERENCE_DEFAULT_TIMEOUT", "Limits:DefaultTimeoutSeconds", "seconds an inference without a client deadline may stay queued (default 60; 0 for none)"),
        new("--generation-timeout", "INFERENCE_GENERATION_TIMEOUT", "Limits:GenerationTimeoutSeconds", "seconds a text generation without a client deadline may take, queued and running (default 600; 0 for none)"),
        new("--model-control-mode", "INFERENCE_MODEL_CONTROL_MODE", "Repository:ModelControlMode", "none (load all) or explicit (load/unload API)"),
        new("--load-model", "INFERENCE_LOAD_MODEL", "Repository:StartupModels", "explicit mode: a model to load at start-up, repeatable; * for all", Repeatable: true),
        new("--strict-readiness", "INFERENCE_STRICT_READINESS", "Repository:StrictReadiness", "ready only when every model is ready (default true)"),
        new("--default-device", "INFERENCE_DEFAULT_DEVICE", "Repository:DefaultDevice", "device of models whose config names none: cpu or cuda:N (default cpu)"),
        new("--default-max-queue-size", "INFERENCE_DEFAULT_MAX_QUEUE_SIZE", "Repository:DefaultMaxQueueSize", "max_queue_size of models whose config sets none (default 1024)"),
        new("--default-max-batch-size", "INFERENCE_DEFAULT_MAX_BATCH_SIZE", "Repository:DefaultMaxBatchSize", "max_batch_size derived for batchable models without one (default 8)"),
        new("--drain-delay", "INFERENCE_DRAIN_DELAY", "Drain:DelaySeconds", "seconds to keep serving after SIGTERM with readiness failing (default 5)"),
        new("--drain-timeout", "INFERENCE_DRAIN_TIMEOUT", "Drain:TimeoutSeconds", "seconds accepted requests get to finish once the listeners close (default 30)"),
        new("--api-key", "INFERENCE_API_KEY", "OpenAi:ApiKey", "require Authorization: Bearer <key> on the OpenAI API (/v1, /openai/v1); default none"),
        new("--nvml-library", "INFERENCE_NVML_LIBRARY", "Metrics:NvmlLibrary", "NVML library for the GPU metrics, a name or a path (default libnvidia-ml.so.1)"),
        new("--access-log", "INFERENCE_ACCESS_LOG", "Server:AccessLog", "one JSON line per request on stdout: true or false (default true)"),
        new("--self-rate-limit", "INFERENCE_SELF_RATE_LIMIT", "Mesh:SelfRateLimit:Enabled", "set this pod's limits to its share of global budgets, watching the Kubernetes API: true or false (default false)"),
        new("--self-rate-limit-budget", "INFERENCE_SELF_RATE_LIMIT_BUDGET", "Mesh:SelfRateLimit:Budgets", "a global budget MODEL=REQUESTS_PER_SECOND for --self-rate-limit, repeatable", Repeatable: true),
        new("--self-rate-limit-subset", "INFERENCE_SELF_RATE_LIMIT_SUBSET", "Mesh:SelfRateLimit:Subset", "this pod's subset (its version label) for --self-rate-limit"),
    ];

    /// <summary>Translates flags (<c>--flag value</c> or <c>--flag=value</c>) into configuration pairs; throws <see cref="ArgumentException"/> on an unknown flag or a missing value.</summary>
    public static Dictionary<string, string?> Parse(IReadOnlyList<string> args)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var counts = new Dictionary<string, int>();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string name = arg, value;
            var eq = arg.IndexOf('=');
            if (eq > 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            else if (i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal))
            {
                value = args[++i];
            }
            else
            {
                throw new ArgumentException($"option {arg} needs a value");
            }
            var flag = Flags.FirstOrDefault(f => f.Name == name) ?? throw new ArgumentException($"unknown option {name}");
            Set(values, counts, flag, value);
        }
        return values;
    }

    /// <summary>Reads the flags' environment-variable twins (a repeatable one takes a comma-separated list).</summary>
    public static Dictionary<string, string?> FromEnvironment(IDictionary environment)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var counts = new Dictionary<string, int>();
        foreach (var flag in Flags)
        {
            if (environment[flag.Environment] is string value)
            {
                foreach (var part in flag.Repeatable ? value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) : [value])
                {
                    Set(values, counts, flag, part);
                }
            }
        }
        return values;
    }

    /// <summary>The help text.</summary>
    public static string Usage() =>
        "Usage: InferenceServer [options]\n\n" + string.Join("\n", Flags.Select(f => $"  {f.Name,-26} {f.Help}\n  {"",-26} env {f.Environment}"))
        + $"\n  {HealthProbe.Flag,-26} probe the server these options configure instead of serving: exit 0 if live, else 1";

    private static void Set(Dictionary<string, string?> values, Dictionary<string, int> counts, Flag flag, string value)
    {
        if (flag.Repeatable)
        {
            counts.TryGetValue(flag.Key, out var n);
            values[$"{flag.Key}:{n}"] = value;
            counts[flag.Key] = n + 1;
        }
        else
        {
            values[flag.Key] = value;
        }
    }
}
