using System.Diagnostics;
using System.Globalization;
using InferenceServer.Client.Cli.Tensors;

namespace InferenceServer.Client.Cli.Batch;

/// <summary>One request of a batch run: a file or a subfolder of the input folder.</summary>
internal sealed record BatchEntry(string Name, string Path, bool IsFolder);

/// <summary>How far a batch run is.</summary>
internal sealed record BatchCounts(int Total, int Succeeded, int Failed, TimeSpan Elapsed)
{
    public int Done => Succeeded + Failed;

    public double PerSecond => Elapsed.TotalSeconds > 0 ? Done / Elapsed.TotalSeconds : 0;

    public string Describe() =>
        string.Create(CultureInfo.InvariantCulture, $"{Done}/{Total} done, {Succeeded} ok, {Failed} failed, {PerSecond:0.0} requests/s");
}

/// <summary>
/// <c>infer predict MODEL --input-dir DIR</c>: one request per entry of DIR, in name order: a <c>.json</c> file (a map of
/// inputs or a KServe request), a <c>.npy</c> file (the model's only input), or a subfolder whose <c>NAME.npy</c> /
/// <c>NAME.json</c> files are the inputs. A failed entry is reported and counted; the run goes on. Outputs go to
/// <c>--output-dir</c>/ENTRY/NAME.npy. Exit code 1 when any entry failed.
/// </summary>
internal sealed class BatchRun(ServerConnection connection, string model, string? version, IReadOnlyList<string> outputs, string? outputDirectory, int concurrency)
{
    public static IReadOnlyList<BatchEntry> Entries(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new CliInputException($"input folder not found: {directory}");
        }
        var files = Directory.EnumerateFiles(directory).Where(f => !Path.GetFileName(f).StartsWith('.'))
            .Select(f => new BatchEntry(Path.GetFileNameWithoutExtension(f), f, false));
        var folders = Directory.EnumerateDirectories(directory).Where(d => !Path.GetFileName(d).StartsWith('.'))
            .Select(d => new BatchEntry(Path.GetFileName(d), d, true));
        return files.Concat(folders).OrderBy(e => e.Path, StringComparer.Ordinal).ToList();
    }

    public async Task<int> RunAsync(string directory, BatchDisplay display, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var entries = Entries(directory);
        if (entries.Count == 0)
        {
            throw new CliInputException($"{directory} holds no inputs (.json or .npy files, or subfolders of them)");
        }
        var taken = entries.GroupBy(e => e.Name).FirstOrDefault(g => g.Count() > 1);
        if (taken is not null && outputDirectory is not null)
        {
            throw new CliInputException($"two entries of {directory} are named {taken.Key} and would write to the same output folder");
        }
        // The model's metadata once: an unknown model stops the run before it starts (exit code 1).
        var metadata = await connection.MetadataAsync(model, version, cancellationToken);
        var failures = new List<(string Entry, string Message)>();
        var stopwatch = Stopwatch.StartNew();
        int succeeded = 0, failed = 0;
        await display.RunAsync(entries.Count, async report =>
        {
            await Parallel.ForEachAsync(entries, new ParallelOptions { MaxDegreeOfParallelism = concurrency, CancellationToken = cancellationToken }, async (entry, ct) =>
            {
                string? message = null;
                try
                {
                    await RunEntryAsync(entry, metadata, ct);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    throw;
                }
#pragma warning disable CA1031 // A failed entry is reported and counted; the run goes on.
                catch (Exception e)
#pragma warning restore CA1031
                {
                    message = ServerConnection.FailureMessage(e) ?? e.Message;
                }
                BatchCounts counts;
                lock (failures)
                {
                    if (message is null)
                    {
                        succeeded++;
                    }
                    else
                    {
                        failed++;
                        failures.Add((entry.Name, message));
                    }
                    counts = new BatchCounts(entries.Count, succeeded, failed, stopwatch.Elapsed);
                }
                report(counts, message is null ? null : $"{entry.Name}: {message}");
            });
            stopwatch.Stop();
        });
        foreach (var (entry, message) in failures.Where(_ => !display.ShowsFailures).OrderBy(f => f.Entry, StringComparer.Ordinal))
        {
            await error.WriteLineAsync($"failed: {entry}: {message}");
        }
        await output.WriteLineAsync(new BatchCounts(entries.Count, succeeded, failed, stopwatch.Elapsed).Describe()
            + (outputDirectory is null ? "" : $"; outputs in {outputDirectory}"));
        return failed == 0 ? ExitCodes.Success : ExitCodes.Failure;
    }

    private async Task RunEntryAsync(BatchEntry entry, ModelMetadata metadata, CancellationToken cancellationToken)
    {
        var inputs = new List<Tensor>();
        var wanted = new List<string>(outputs);
        if (entry.IsFolder)
        {
            var files = Directory.EnumerateFiles(entry.Path).Where(f => !Path.GetFileName(f).StartsWith('.')).OrderBy(f => f, StringComparer.Ordinal).ToList();
            if (files.Count == 0)
            {
                throw new CliInputException("the folder is empty (expected NAME.npy or NAME.json per input)");
            }
            foreach (var file in files)
            {
                inputs.AddRange(InputFiles.LoadFile(file, Path.GetFileNameWithoutExtension(file)).Inputs);
            }
        }
        else
        {
            var request = InputFiles.LoadFile(entry.Path, null);
            inputs.AddRange(request.Inputs);
            wanted.AddRange(request.Outputs.Where(o => !wanted.Contains(o)));
        }
        var resolved = InputFiles.Resolve(inputs, metadata, Path.GetFileName(entry.Path));
        var result = await connection.InferAsync(model, version, resolved, wanted, cancellationToken);
        if (outputDirectory is not null)
        {
            OutputWriter.Save(Path.Combine(outputDirectory, entry.Name), result);
        }
    }
}
