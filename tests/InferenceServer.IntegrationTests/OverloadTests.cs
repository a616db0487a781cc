using System.Globalization;
using System.Net;
using System.Text;
using Grpc.Core;
using InferenceServer.Backends;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// Offered load at three times what a model can absorb (one instance plus a queue of <see cref="QueueSize"/>): every
/// request is either served or shed with 429 / RESOURCE_EXHAUSTED, the queue never holds more than its bound (so an
/// admitted request waits behind at most that many), admitted requests all succeed, and memory stays bounded.
/// Asserted on counts and queue depths, never on time: the gate holds the engine while the load arrives.
/// </summary>
[Collection(ProcessWideCollection.Name)]
public sealed class OverloadTests
{
    private const int QueueSize = 4;
    private const int Capacity = QueueSize + 1;
    private const int Offered = 3 * Capacity;
    private const int Rounds = 8;

    private sealed record Outcome(bool Served, bool Shed, string Detail);

    [Fact]
    public async Task At_three_times_capacity_the_excess_is_shed_and_the_queue_stays_bounded()
    {
        var repo = Paths.NewTempDirectory("overload-repo");
        GateBackend.WriteModel(repo, "overload", $"max_batch_size: 0\ndynamic_batching:\n  default_queue_policy: {{max_queue_size: {QueueSize}}}\ninstance_group:\n  - count: 1\n    kind: KIND_CPU\n");
        await using var server = await RunningServer.StartAsync(repo, services => services.AddSingleton<IModelBackend, GateBackend>(), "--access-log", "false");
        var state = GateBackend.States["overload"];
        using var metrics = server.NewMetricsClient();

        // Warm up both protocols once, then take the memory baseline.
        Assert.True((await SendAsync(server, 0, 0)).Served);
        Assert.True((await SendAsync(server, 0, 1)).Served);
        var baseline = GC.GetTotalMemory(forceFullCollection: true);
        var executionsBefore = state.Executions.Count;

        int served = 0, shed = 0, maxQueue = 0;
        for (var round = 1; round <= Rounds; round++)
        {
            state.Open.Reset();
            var executionsAtStart = state.Executions.Count;
            var completed = 0;
            var requests = Enumerable.Range(0, Offered).Select(i => Task.Run(async () =>
            {
                var outcome = await SendAsync(server, round, i);
                Interlocked.Increment(ref completed);
                return outcome;
            })).ToArray();

            // Every request has been placed once the shed ones are answered and the rest are queued or running.
            var until = DateTime.UtcNow.AddSeconds(60);
            int queued, running;
            while (true)
            {
                queued = server.Repository.Select("overload", "").QueueLength;
                running = state.Executions.Count - executionsAtStart;
                maxQueue = Math.Max(maxQueue, queued);
                Assert.True(queued <= QueueSize, $"round {round}: {queued} requests queued, over max_queue_size {QueueSize}");
                if (Volatile.Read(ref completed) + queued + running == Offered && running == 1)
                {
                    break;
                }
                Assert.True(DateTime.UtcNow < until, $"round {round}: {Volatile.Read(ref completed)} answered, {queued} queued, {running} running of {Offered}");
                await Task.Delay(5);
            }
            // The exported gauge agrees with the queue while the engine is held.
            Assert.Equal(queued, await QueueDepthGaugeAsync(metrics));

            state.Open.Set();
            var outcomes = await Task.WhenAll(requests);
            var roundServed = outcomes.Count(o => o.Served);
            var roundShed = outcomes.Count(o => o.Shed);
            Assert.True(outcomes.All(o => o.Served || o.Shed), $"round {round}: " + string.Join("; ", outcomes.Where(o => !o.Served && !o.Shed).Select(o => o.Detail)));
            Assert.Equal(Offered, roundServed + roundShed);
            // One running plus at most QueueSize queued were admitted: each waited behind at most QueueSize others.
            Assert.InRange(roundServed, 1, Capacity);
            Assert.True(roundShed >= Offered - Capacity, $"round {round}: only {roundShed} of {Offered} shed");
            Assert.Equal(roundServed, state.Executions.Count - executionsAtStart);
            served += roundServed;
            shed += roundShed;
        }

        Assert.Equal(Rounds * Offered, served + shed);
        Assert.True(shed >= Rounds * (Offered - Capacity), $"{shed} shed of {Rounds * Offered}");
        Assert.Equal(served, state.Executions.Count - executionsBefore);
        Assert.True(maxQueue > 0, "the queue never filled: the load did not reach the model");
        Assert.Equal(0, server.Repository.Select("overload", "").QueueLength);
        var after = GC.GetTotalMemory(forceFullCollection: true);
        Assert.True(after - baseline < 32L * 1024 * 1024, $"managed memory grew from {baseline / 1024 / 1024} MB to {after / 1024 / 1024} MB under overload");
    }

    /// <summary>One request, alternately over REST and gRPC; served means the model echoed exactly what was sent.</summary>
    private static async Task<Outcome> SendAsync(RunningServer server, int round, int i)
    {
        float[] values = [round, i];
        var input = new WireTensor("x", "FP32", [1, 2], values.SelectMany(BitConverter.GetBytes).ToArray());
        if (i % 2 == 0)
        {
            var (body, _) = InferClient.BuildRestBody([input], binary: false);
            using var response = await server.Http.PostAsync("/v2/models/overload/infer", new ByteArrayContent(body));
            var text = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                return new(false, response.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1), "429 without Retry-After");
            }
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return new(false, false, $"{(int)response.StatusCode} {text}");
            }
            var output = InferClient.ParseRestResponse(response, Encoding.UTF8.GetBytes(text)).Single();
            return new(output.Data.SequenceEqual(input.Data), false, "wrong answer");
        }
        try
        {
            var reply = await server.Grpc.ModelInferAsync(InferClient.BuildGrpcRequest("overload", "", [input], raw: true));
            return new(reply.RawOutputContents.Single().ToByteArray().SequenceEqual(input.Data), false, "wrong answer");
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.ResourceExhausted)
        {
            return new(false, true, "");
        }
        catch (RpcException e)
        {
            return new(false, false, $"{e.StatusCode} {e.Status.Detail}");
        }
    }

    private static async Task<int> QueueDepthGaugeAsync(HttpClient metrics)
    {
        const string series = "inference_queue_depth{model=\"overload\",version=\"1\"} ";
        var line = (await metrics.GetStringAsync("/metrics")).Split('\n').Single(l => l.StartsWith(series, StringComparison.Ordinal));
        return (int)double.Parse(line[series.Length..], CultureInfo.InvariantCulture);
    }
}
