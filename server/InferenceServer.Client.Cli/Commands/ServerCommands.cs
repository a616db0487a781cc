using System.CommandLine;
using System.Text.Json;

namespace InferenceServer.Client.Cli.Commands;

/// <summary><c>infer health</c>, <c>infer models</c> and <c>infer metadata</c>.</summary>
internal static class ServerCommands
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Health(CommonOptions common)
    {
        var model = new Option<string?>("--model") { Description = "also check that this model is ready" };
        var version = new Option<string?>("--version") { Description = "the model's version (with --model)" };
        var command = new Command("health", "is the server live and ready (and a model, with --model)? exit code 1 when not");
        command.Options.Add(model);
        command.Options.Add(version);
        command.SetAction((result, cancellationToken) => CommandRunner.RunAsync(result, common, cancellationToken, async (connection, output, _) =>
        {
            var live = await connection.LiveAsync(cancellationToken);
            var ready = live && await connection.ReadyAsync(cancellationToken);
            await output.WriteLineAsync($"server {connection.Settings.Target}: live {YesNo(live)}, ready {YesNo(ready)}");
            var healthy = live && ready;
            if (result.GetValue(model) is { } name)
            {
                var modelReady = await connection.ModelReadyAsync(name, result.GetValue(version), cancellationToken);
                await output.WriteLineAsync($"model {name}: ready {YesNo(modelReady)}");
                healthy &= modelReady;
            }
            return healthy ? ExitCodes.Success : ExitCodes.Failure;
        }));
        return command;
    }

    public static Command Models(CommonOptions common)
    {
        var format = FormatOption();
        var command = new Command("models", "list the model repository: each model's versions and state");
        command.Options.Add(format);
        command.SetAction((result, cancellationToken) => CommandRunner.RunAsync(result, common, cancellationToken, async (connection, output, _) =>
        {
            var models = await connection.ModelsAsync(cancellationToken);
            if (result.GetValue(format) == "json")
            {
                // Fields a server leaves empty (a loaded version's reason) are null in the JSON.
                await output.WriteLineAsync(JsonSerializer.Serialize(
                    models.Select(m => new { m.Name, Version = Empty(m.Version), State = Empty(m.State), Reason = Empty(m.Reason) }), Indented));
                return ExitCodes.Success;
            }
            await output.WriteLineAsync($"{"MODEL",-32} {"VERSION",-8} {"STATE",-12} REASON");
            foreach (var entry in models)
            {
                await output.WriteLineAsync($"{entry.Name,-32} {entry.Version,-8} {entry.State,-12} {entry.Reason}");
            }
            return ExitCodes.Success;
        }));
        return command;
    }

    public static Command Metadata(CommonOptions common)
    {
        var model = new Argument<string>("MODEL") { Description = "the model" };
        var version = new Option<string?>("--version") { Description = "a version (default: the server's choice)" };
        var format = FormatOption();
        var command = new Command("metadata", "a model's versions, platform, inputs and outputs");
        command.Arguments.Add(model);
        command.Options.Add(version);
        command.Options.Add(format);
        command.SetAction((result, cancellationToken) => CommandRunner.RunAsync(result, common, cancellationToken, async (connection, output, _) =>
        {
            var metadata = await connection.MetadataAsync(result.GetValue(model)!, result.GetValue(version), cancellationToken);
            if (result.GetValue(format) == "json")
            {
                await output.WriteLineAsync(JsonSerializer.Serialize(metadata, Indented));
                return ExitCodes.Success;
            }
            await output.WriteLineAsync($"model {metadata.Name} (versions {string.Join(", ", metadata.Versions)}; platform {metadata.Platform})");
            foreach (var (kind, tensors) in new[] { ("input", metadata.Inputs), ("output", metadata.Outputs) })
            {
                foreach (var tensor in tensors)
                {
                    await output.WriteLineAsync($"  {kind,-6} {tensor.Name,-24} {tensor.Datatype,-6} [{string.Join(", ", tensor.Shape)}]");
                }
            }
            return ExitCodes.Success;
        }));
        return command;
    }

    public static Option<string> FormatOption()
    {
        var format = new Option<string>("--format") { Description = "table or json", DefaultValueFactory = _ => "table" };
        format.AcceptOnlyFromAmong("table", "json");
        return format;
    }

    private static string YesNo(bool value) => value ? "yes" : "no";

    private static string? Empty(string value) => value.Length == 0 ? null : value;
}
