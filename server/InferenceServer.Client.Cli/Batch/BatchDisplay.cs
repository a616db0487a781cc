using Spectre.Console;

namespace InferenceServer.Client.Cli.Batch;

/// <summary>
/// The progress of a batch run: a Spectre.Console progress bar (counts, throughput, errors) on a terminal, plain lines
/// when the output is redirected or not the console (a line per failure and one per tenth of the run).
/// </summary>
internal abstract class BatchDisplay
{
    /// <summary>Runs <paramref name="work"/>, which calls its argument after each entry with the counts and the failure, if any.</summary>
    public abstract Task RunAsync(int total, Func<Action<BatchCounts, string?>, Task> work);

    /// <summary>Whether failures were already printed as they happened (else the run lists them at the end).</summary>
    public abstract bool ShowsFailures { get; }

    public static BatchDisplay For(TextWriter output, TextWriter error) =>
        ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive
            ? new TerminalBatchDisplay()
            : new PlainBatchDisplay(error);

    private sealed class TerminalBatchDisplay : BatchDisplay
    {
        public override bool ShowsFailures => false;

        public override Task RunAsync(int total, Func<Action<BatchCounts, string?>, Task> work) =>
            AnsiConsole.Progress()
                .AutoClear(false)
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask($"0/{total}", maxValue: total);
                    await work((counts, _) =>
                    {
                        task.Value = counts.Done;
                        task.Description = Markup.Escape(counts.Describe());
                    });
                    task.StopTask();
                });
    }

    private sealed class PlainBatchDisplay(TextWriter error) : BatchDisplay
    {
        public override bool ShowsFailures => true;

        public override Task RunAsync(int total, Func<Action<BatchCounts, string?>, Task> work)
        {
            var step = Math.Max(1, total / 10);
            var gate = new object();
            return work((counts, failure) =>
            {
                lock (gate)
                {
                    if (failure is not null)
                    {
                        error.WriteLine($"error: {failure}");
                    }
                    if (counts.Done % step == 0 || counts.Done == total)
                    {
                        error.WriteLine($"progress: {counts.Describe()}");
                    }
                }
            });
        }
    }
}
