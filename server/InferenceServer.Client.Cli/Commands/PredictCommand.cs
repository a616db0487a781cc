using System.CommandLine;
using InferenceServer.Client.Cli.Batch;
using InferenceServer.Client.Cli.Tensors;

namespace InferenceServer.Client.Cli.Commands;

/// <summary><c>infer predict MODEL</c>: one request from <c>--input</c>/<c>--json</c>, or one request per entry of <c>--input-dir</c>.</summary>
internal static class PredictCommand
{
    public static Command Build(CommonOptions common)
    {
        var model = new Argument<string>("MODEL") { Description = "the model" };
        var version = new Option<string?>("--version") { Description = "a version (default: the server's choice)" };
        var inputs = new Option<string[]>("--input", "-i")
        {
            Description = "an input: NAME=file.npy, NAME=file.json, or a .json file holding several inputs; a lone .npy names the model's only input; repeatable",
            Arity = ArgumentArity.OneOrMore,
        };
        var json = new Option<string?>("--json") { Description = "a request as JSON: a map of inputs ({\"INPUT0\": {\"datatype\", \"shape\", \"data\"}}) or KServe's request JSON" };
        var inputDir = new Option<string?>("--input-dir") { Description = "a batch run: one request per .json file, .npy file (single-input models) or subfolder (NAME.npy/NAME.json per input) of this folder" };
        var outputs = new Option<string[]>("--output", "-o") { Description = "ask for this output only; repeatable (default: all)", Arity = ArgumentArity.OneOrMore };
        var outputDir = new Option<string?>("--output-dir") { Description = "save each output as NAME.npy here (batch runs: in a subfolder per entry)" };
        var binary = new Option<bool>("--binary") { Description = "REST: send and receive tensors with the binary data extension (faster for large tensors)" };
        var concurrency = new Option<int>("--concurrency") { Description = "batch runs: requests in flight at once", DefaultValueFactory = _ => 4 };
        var format = ServerCommands.FormatOption();
        var command = new Command("predict", "run an inference and print (or save) the outputs");
        command.Arguments.Add(model);
        foreach (var option in new Option[] { version, inputs, json, inputDir, outputs, outputDir, binary, concurrency, format })
        {
            command.Options.Add(option);
        }
        command.SetAction((result, cancellationToken) => CommandRunner.RunAsync(result, common, cancellationToken, async (connection, output, error) =>
        {
            var name = result.GetValue(model)!;
            var requested = result.GetValue(outputs) ?? [];
            var directory = result.GetValue(inputDir);
            var hasInputs = (result.GetValue(inputs)?.Length ?? 0) > 0 || result.GetValue(json) is not null;
            if (directory is not null)
            {
                if (hasInputs)
                {
                    throw new CliInputException("give either --input-dir or --input/--json, not both");
                }
                var parallel = result.GetValue(concurrency);
                if (parallel < 1)
                {
                    throw new CliInputException($"--concurrency must be 1 or more, not {parallel}");
                }
                var run = new BatchRun(connection, name, result.GetValue(version), requested, result.GetValue(outputDir), parallel);
                var display = BatchDisplay.For(output, error);
                return await run.RunAsync(directory, display, output, error, cancellationToken);
            }
            if (!hasInputs)
            {
                throw new CliInputException("give the inputs: --input NAME=file.npy (or .json), --json request.json, or --input-dir DIR");
            }
            var loaded = new List<Tensor>();
            var wanted = new List<string>(requested);
            foreach (var spec in result.GetValue(inputs) ?? [])
            {
                var request = InputFiles.Load(spec);
                loaded.AddRange(request.Inputs);
                wanted.AddRange(request.Outputs.Where(o => !wanted.Contains(o)));
            }
            if (result.GetValue(json) is { } jsonPath)
            {
                var request = InputFiles.LoadFile(jsonPath, null);
                loaded.AddRange(request.Inputs);
                wanted.AddRange(request.Outputs.Where(o => !wanted.Contains(o)));
            }
            var duplicate = loaded.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1 && g.Key != InputFiles.Unnamed);
            if (duplicate is not null)
            {
                throw new CliInputException($"input {duplicate.Key} is given more than once");
            }
            var metadata = await connection.MetadataAsync(name, result.GetValue(version), cancellationToken);
            var resolved = InputFiles.Resolve(loaded, metadata, "--input");
            var inferred = await connection.InferAsync(name, result.GetValue(version), resolved, wanted, cancellationToken);
            OutputWriter.Print(output, inferred, result.GetValue(format)!);
            if (result.GetValue(outputDir) is { } saveTo)
            {
                foreach (var path in OutputWriter.Save(saveTo, inferred))
                {
                    await error.WriteLineAsync($"saved {path}");
                }
            }
            return ExitCodes.Success;
        }, result.GetValue(binary)));
        return command;
    }
}
