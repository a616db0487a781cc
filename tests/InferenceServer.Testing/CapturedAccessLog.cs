using System.Text;
using System.Text.Json;
using InferenceServer.Observability;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>An access log sink that keeps every line, parsed as JSON, for a test to wait on and read.</summary>
public sealed class CapturedAccessLog : IAccessLogSink
{
    private readonly Lock _gate = new();
    private readonly List<JsonElement> _lines = [];
    private TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The lines so far.</summary>
    public IReadOnlyList<JsonElement> Lines
    {
        get
        {
            using var _ = _gate.EnterScope();
            return [.. _lines];
        }
    }

    /// <summary>Called before each write (on the writer's thread); a test can hold the writer here.</summary>
    public Action? BeforeWrite { get; set; }

    public void Write(ReadOnlySpan<byte> lines)
    {
        BeforeWrite?.Invoke();
        var text = Encoding.UTF8.GetString(lines);
        Assert.EndsWith("\n", text);
        TaskCompletionSource written;
        using (_gate.EnterScope())
        {
            foreach (var line in text[..^1].Split('\n'))
            {
                // Every line must be one JSON object on its own: this throws otherwise.
                using var document = JsonDocument.Parse(line);
                _lines.Add(document.RootElement.Clone());
            }
            written = _written;
            _written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        written.SetResult();
    }

    /// <summary>The line of the request with this id, once written (the writer is asynchronous).</summary>
    public Task<JsonElement> ForRequestAsync(string requestId) =>
        WaitForAsync(l => l.GetProperty("request_id").GetString() == requestId, $"request {requestId}");

    /// <summary>Waits up to 30 s for a line that matches.</summary>
    public async Task<JsonElement> WaitForAsync(Func<JsonElement, bool> match, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            Task written;
            using (_gate.EnterScope())
            {
                foreach (var line in _lines)
                {
                    if (match(line))
                    {
                        return line;
                    }
                }
                written = _written.Task;
            }
            var remaining = deadline - DateTime.UtcNow;
            if (remaining <= TimeSpan.Zero)
            {
                throw new TimeoutException($"no access log line for {what}; lines: {string.Join("\n", Lines)}");
            }
            try
            {
                await written.WaitAsync(remaining);
            }
            catch (TimeoutException)
            {
                // Checked once more above, then reported.
            }
        }
    }
}
