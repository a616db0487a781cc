using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tensors;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Tests.Core.Inference;

/// <summary>
/// The protocol-free entry point over a real repository of gate models (the test engine copies x to y and can hold an
/// execution): a request runs and is counted; an unknown model, a wrong datatype or a priority the model does not have
/// never reach the engine and are counted as failures; a typed timeout takes a queued request out with DEADLINE_EXCEEDED.
/// </summary>
public sealed class InferenceDispatcherTests
{
    private static async Task<(ModelRepository Repository, GateState Gate)> LoadAsync(string name)
    {
        var path = Paths.NewTempDirectory("dispatcher-repo");
        GateBackend.WriteModel(path, name, "max_batch_size: 0\n");
        var repository = new ModelRepository(
            new ModelRepositoryOptions { Path = path },
            new IModelBackend[] { new GateBackend() },
            NullLogger<ModelRepository>.Instance);
        await repository.LoadStartupModelsAsync(CancellationToken.None);
        return (repository, GateBackend.States[name]);
    }

    private static InferenceRequest Request(string model, DataType type = DataType.Fp32)
    {
        var request = new InferenceRequest(model) { Id = "r1" };
        float[] values = [1, 2, 3];
        request.AddInput(new Tensor("x", type, [1, 3], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(values.AsSpan()))));
        return request;
    }

    [Fact]
    public async Task A_request_runs_on_its_model_and_is_counted()
    {
        var (repository, gate) = await LoadAsync("disp-run");
        using (repository)
        {
            var dispatcher = new InferenceDispatcher(repository);
            using var request = Request("disp-run");
            using var response = await dispatcher.InferAsync(request, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(("disp-run", "1", "r1"), (response.ModelName, response.ModelVersion, response.Id));
            Assert.Equal([1f, 2, 3], response.Outputs.Single().Elements<float>().ToArray());
            Assert.Single(gate.Executions);
            var statistics = repository.GetReady("disp-run", "").Statistics;
            Assert.Equal(1, statistics.Success.Count);
            Assert.Equal(0, statistics.Fail.Count);
        }
    }

    [Fact]
    public async Task Bad_requests_never_reach_the_engine_and_count_as_failures()
    {
        var (repository, gate) = await LoadAsync("disp-bad");
        using (repository)
        {
            var dispatcher = new InferenceDispatcher(repository);
            using var unknown = Request("disp-nosuch");
            var notFound = await Assert.ThrowsAsync<InferenceException>(() => dispatcher.InferAsync(unknown, CancellationToken.None));
            Assert.Equal(InferenceErrorKind.NotFound, notFound.Kind);
            Assert.Contains("disp-bad", notFound.Message, StringComparison.Ordinal);

            using var wrongType = Request("disp-bad", DataType.Int32);
            var invalid = await Assert.ThrowsAsync<InferenceException>(() => dispatcher.InferAsync(wrongType, CancellationToken.None));
            Assert.Equal(InferenceErrorKind.InvalidArgument, invalid.Kind);
            Assert.Contains("'x'", invalid.Message, StringComparison.Ordinal);

            using var priority = Request("disp-bad");
            priority.Priority = 5;
            var level = await Assert.ThrowsAsync<InferenceException>(() => dispatcher.InferAsync(priority, CancellationToken.None));
            Assert.Equal(InferenceErrorKind.InvalidArgument, level.Kind);
            Assert.Contains("parameter 'priority'", level.Message, StringComparison.Ordinal);

            Assert.Empty(gate.Executions);
            Assert.Equal(2, repository.GetReady("disp-bad", "").Statistics.Fail.Count);
        }
    }

    [Fact]
    public async Task A_typed_timeout_takes_a_queued_request_out_with_deadline_exceeded()
    {
        var (repository, gate) = await LoadAsync("disp-timeout");
        using (repository)
        {
            var dispatcher = new InferenceDispatcher(repository);
            gate.Open.Reset();
            using var holder = Request("disp-timeout");
            var running = dispatcher.InferAsync(holder, CancellationToken.None);
            await gate.WaitForExecutionsAsync(1);

            using var queued = Request("disp-timeout");
            queued.TimeoutMicroseconds = 1;
            var error = await Assert.ThrowsAsync<InferenceException>(() => dispatcher.InferAsync(queued, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(InferenceErrorKind.DeadlineExceeded, error.Kind);

            gate.Open.Set();
            (await running.WaitAsync(TimeSpan.FromSeconds(30))).Dispose();
            Assert.Single(gate.Executions);
        }
    }
}
