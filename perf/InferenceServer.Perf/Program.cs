using InferenceServer.Backends.TorchSharp;
using InferenceServer.Perf;

// TorchSharp needs a newer libstdc++ than Debian 12 has; this re-executes under the private host there (no return).
LibStdCxxCompat.ReexecIfNeeded(args);

// perf: the generic load generator and engine baseline (no subcommand), `bench NAME` (the benchmarks of
// perf/RESULTS.md, each in one process run) and `echo` (the bare echo server on its own). See perf/README.md.
return args.FirstOrDefault() switch
{
    "bench" => await BenchCommand.RunAsync(args[1..]),
    "echo" => await EchoCommand.RunAsync(args[1..]),
    _ => await GenericCommand.RunAsync(args),
};
