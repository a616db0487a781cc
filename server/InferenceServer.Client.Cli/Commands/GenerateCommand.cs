using System.CommandLine;
using System.Globalization;

namespace InferenceServer.Client.Cli.Commands;

/// <summary><c>infer generate MODEL "prompt"</c>: text generation, streamed to the terminal piece by piece with --stream.</summary>
internal static class GenerateCommand
{
    public static Command Build(CommonOptions common)
    {
        var model = new Argument<string>("MODEL") { Description = "a generative model" };
        var prompt = new Argument<string>("PROMPT") { Description = "the prompt" };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "at most this many tokens (default: the model's)" };
        var temperature = new Option<double?>("--temperature") { Description = "sampling temperature; 0 = greedy (default: 1)" };
        var stream = new Option<bool>("--stream") { Description = "print the text as it is generated" };
        var command = new Command("generate", "generate text from a prompt (Triton's generate extension)");
        command.Arguments.Add(model);
        command.Arguments.Add(prompt);
        command.Options.Add(maxTokens);
        command.Options.Add(temperature);
        command.Options.Add(stream);
        command.SetAction((result, cancellationToken) => CommandRunner.RunAsync(result, common, cancellationToken, async (connection, output, _) =>
        {
            if (result.GetValue(maxTokens) is { } max && max < 1)
            {
                throw new CliInputException($"--max-tokens must be 1 or more, not {max}");
            }
            if (result.GetValue(temperature) is { } t && (!double.IsFinite(t) || t < 0))
            {
                throw new CliInputException($"--temperature must be 0 or more, not {t.ToString(CultureInfo.InvariantCulture)}");
            }
            var settings = new GenerateSettings(result.GetValue(maxTokens), result.GetValue(temperature));
            var name = result.GetValue(model)!;
            var text = result.GetValue(prompt)!;
            if (result.GetValue(stream))
            {
                await foreach (var piece in connection.GenerateStreamAsync(name, text, settings, cancellationToken))
                {
                    await output.WriteAsync(piece);
                    await output.FlushAsync(cancellationToken);
                }
                await output.WriteLineAsync();
            }
            else
            {
                await output.WriteLineAsync(await connection.GenerateAsync(name, text, settings, cancellationToken));
            }
            return ExitCodes.Success;
        }));
        return command;
    }
}
