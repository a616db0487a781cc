using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Generation.Templates;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Core.Generation.Templates;

/// <summary>One template rendered with one set of variables (a JSON object), by Jinja2 and by the engine.</summary>
public sealed record TemplateCase(string Name, string Template, string VariablesJson);

/// <summary>What Jinja2 (render_reference.py) produced for a case: the output, or the error it raised.</summary>
public sealed record ReferenceResult(bool Ok, string? Output, string? Error, string? Message);

/// <summary>
/// Runs the Jinja2 reference (transformers' configuration, render_reference.py) over many cases in one
/// /usr/bin/python3 process, and compares the engine with it.
/// </summary>
public static class JinjaReference
{
    /// <summary>strftime_now's fixed time on both sides.</summary>
    public static readonly DateTime Now = new(2024, 7, 23, 14, 5, 9, DateTimeKind.Unspecified);

    public const string Python = "/usr/bin/python3";

    public static string Script => Path.Combine(Paths.RepositoryRoot, "tests", "InferenceServer.Core.Tests", "Generation", "Templates", "render_reference.py");

    public static IReadOnlyList<ReferenceResult> Render(IReadOnlyList<TemplateCase> cases)
    {
        EnsureJinja2();
        var request = new JsonObject
        {
            ["now"] = Now.ToString("yyyy-MM-ddTHH:mm:ss"),
            ["cases"] = new JsonArray(cases.Select(c => (JsonNode)new JsonObject
            {
                ["template"] = c.Template,
                ["variables"] = JsonNode.Parse(c.VariablesJson),
            }).ToArray()),
        };
        var (exit, stdout, stderr) = Run(Script, request.ToJsonString());
        if (exit != 0)
        {
            throw new InvalidOperationException($"render_reference.py failed ({exit}): {stderr}");
        }
        var results = JsonSerializer.Deserialize<List<ReferenceResult>>(stdout, new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
        Assert.Equal(cases.Count, results.Count);
        return results;
    }

    private static void EnsureJinja2()
    {
        var (exit, _, stderr) = Run("-c", "import jinja2", argumentIsScript: false);
        if (exit != 0)
        {
            throw new InvalidOperationException(
                $"the template tests compare with Jinja2 and need {Python} with jinja2: install the Debian package python3-jinja2 (apt-get install python3-jinja2). {stderr}");
        }
    }

    private static (int Exit, string Stdout, string Stderr) Run(string scriptOrFlag, string input, bool argumentIsScript = true)
    {
        var start = SystemProcess.StartInfo(Python);
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.ArgumentList.Add(scriptOrFlag);
        if (!argumentIsScript)
        {
            start.ArgumentList.Add(input);
        }
        start.Environment["PYTHONIOENCODING"] = "utf-8";
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"the template tests need {Python} with jinja2 (Debian packages python3 and python3-jinja2): {e.Message}");
        }
        using (process)
        {
            var stdoutTask = process.StandardOutput.ReadToEndAsync();
            var stderrTask = process.StandardError.ReadToEndAsync();
            if (argumentIsScript)
            {
                process.StandardInput.Write(input);
            }
            process.StandardInput.Close();
            if (!process.WaitForExit(120_000))
            {
                process.Kill();
                throw new TimeoutException("render_reference.py did not finish in 120 s");
            }
            return (process.ExitCode, stdoutTask.GetAwaiter().GetResult(), stderrTask.GetAwaiter().GetResult());
        }
    }

    /// <summary>Renders a case with the engine, as the server would: variables from JSON, the fixed clock.</summary>
    public static string RenderWithEngine(TemplateCase c)
    {
        using var doc = JsonDocument.Parse(c.VariablesJson);
        var variables = new Dictionary<string, object?>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            variables[p.Name] = JinjaValue.FromJson(p.Value);
        }
        return JinjaTemplate.Parse(c.Template).Render(variables, new FixedClock(Now));
    }

    /// <summary>Asserts the engine does what Jinja2 did: the same output byte for byte, or an error.</summary>
    /// <summary>
    /// Renders every case with Jinja2 and the engine and fails listing the first <paramref name="show"/> cases that
    /// differ (shortest first), each with both outputs; returns Jinja2's results for further checks.
    /// </summary>
    public static IReadOnlyList<ReferenceResult> AssertAllSame(IReadOnlyList<TemplateCase> cases, int show)
    {
        var expected = Render(cases);
        var failures = new List<string>();
        for (var i = 0; i < cases.Count; i++)
        {
            try
            {
                AssertSame(cases[i], expected[i]);
            }
            catch (Exception e)
            {
                var reference = expected[i].Ok ? JsonSerializer.Serialize(expected[i].Output) : expected[i].Error + ": " + expected[i].Message;
                failures.Add($"{JsonSerializer.Serialize(cases[i].Template)} with {cases[i].VariablesJson}: {e.Message.Split('\n')[0]}\n  jinja2: {reference}\n  engine: {EngineOrError(cases[i])}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} differ:\n" + string.Join("\n", failures.OrderBy(f => f.Length).Take(show)));
        return expected;
    }

    /// <summary>The engine's output as JSON, or its error, for failure messages.</summary>
    public static string EngineOrError(TemplateCase c)
    {
        try
        {
            return JsonSerializer.Serialize(RenderWithEngine(c));
        }
        catch (Exception e)
        {
            return "error " + e.Message;
        }
    }

    public static void AssertSame(TemplateCase c, ReferenceResult expected)
    {
        if (expected.Ok)
        {
            string actual;
            try
            {
                actual = RenderWithEngine(c);
            }
            catch (JinjaException e)
            {
                throw new Xunit.Sdk.XunitException($"case {c.Name}: Jinja2 rendered {JsonSerializer.Serialize(expected.Output)} but the engine threw: {e.Message}\ntemplate: {c.Template}");
            }
            if (actual != expected.Output)
            {
                throw new Xunit.Sdk.XunitException($"case {c.Name}: output differs\nexpected: {JsonSerializer.Serialize(expected.Output)}\nactual:   {JsonSerializer.Serialize(actual)}\ntemplate: {c.Template}");
            }
            return;
        }
        try
        {
            var output = RenderWithEngine(c);
            throw new Xunit.Sdk.XunitException($"case {c.Name}: Jinja2 raised {expected.Error}: {expected.Message} but the engine rendered {JsonSerializer.Serialize(output)}\ntemplate: {c.Template}");
        }
        catch (JinjaRaisedException e)
        {
            Assert.True(expected.Error == "TemplateError", $"case {c.Name}: the engine raised raise_exception({e.Message}) where Jinja2 raised {expected.Error}: {expected.Message}");
            Assert.Equal(expected.Message, e.Message);
        }
        catch (JinjaException e)
        {
            Assert.True(expected.Error != "TemplateError" || expected.Message is null || !c.Template.Contains("raise_exception"),
                $"case {c.Name}: Jinja2 called raise_exception({expected.Message}) but the engine threw {e.Message}");
        }
    }
}

/// <summary>A clock fixed at one local time (the local zone is UTC), for strftime_now.</summary>
public sealed class FixedClock(DateTime now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => new(DateTime.SpecifyKind(now, DateTimeKind.Utc));

    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
