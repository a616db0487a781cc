using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tensors;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Tests.Integration;

/// <summary>
/// The dispatcher's one lookup over a repository holding a gate model and the sample generative model bigram_lm (ONNX
/// Runtime): a tensor request runs on the tensor model; a text_input request for bigram_lm becomes its generation.
/// </summary>
public sealed class DispatcherRoutingTests
{
    private static InferenceRequest Request(string model)
    {
        var request = new InferenceRequest(model) { Id = "r1" };
        float[] values = [1, 2, 3];
        request.AddInput(new Tensor("x", DataType.Fp32, [1, 3], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(values.AsSpan()))));
        return request;
    }

    [Fact]
    public async Task One_lookup_decides_between_a_tensor_inference_and_a_generation()
    {
        // A repository holding a gate model and the sample generative model bigram_lm (ONNX Runtime).
        var path = Paths.NewTempDirectory("dispatcher-route");
        GateBackend.WriteModel(path, "disp-tensor", "max_batch_size: 0\n");
        Directory.CreateSymbolicLink(Path.Combine(path, InferenceServer.ModelBuilder.SampleModels.BigramName), Path.Combine(Paths.SampleModels, InferenceServer.ModelBuilder.SampleModels.BigramName));
        using var repository = new ModelRepository(
            new ModelRepositoryOptions { Path = path },
            new IModelBackend[] { new GateBackend(), new InferenceServer.Backends.OnnxRuntime.OnnxRuntimeBackend() },
            NullLogger<ModelRepository>.Instance);
        await repository.LoadStartupModelsAsync(CancellationToken.None);
        var dispatcher = new InferenceDispatcher(repository);

        using (var tensors = Request("disp-tensor"))
        {
            var dispatched = dispatcher.Dispatch(tensors, CancellationToken.None);
            Assert.Null(dispatched.Generation);
            using var response = await dispatched.Tensors!.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal([1f, 2, 3], response.Outputs.Single().Elements<float>().ToArray());
        }

        var bigram = InferenceServer.ModelBuilder.SampleModels.BigramName;
        using (var text = TextRequest(bigram, "Tell me"))
        {
            text.Parameters["max_tokens"] = 5L;
            text.Parameters["temperature"] = 0.0;
            text.Parameters["stream"] = true;
            var dispatched = dispatcher.Dispatch(text, CancellationToken.None);
            Assert.Null(dispatched.Tensors);
            Assert.True(dispatched.Streamed);
            var stream = await dispatched.Generation!.WaitAsync(TimeSpan.FromSeconds(30));
            var result = await InferenceServer.Generation.GenerationResult.ReadAsync(stream, CancellationToken.None);
            Assert.Equal(InferenceServer.ModelBuilder.SampleModels.BigramGreedy('e', 5), result.Text);
        }
        Assert.Equal(1, repository.GetReady(bigram, "").Statistics.Success.Count);

        // A generative model's request with tensors it does not take: the generation's error, not the validator's.
        using (var wrong = Request(bigram))
        {
            var dispatched = dispatcher.Dispatch(wrong, CancellationToken.None);
            var e = await Assert.ThrowsAsync<InferenceException>(() => dispatched.Generation!);
            Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
            Assert.Contains("text_input", e.Message);
        }
        // A text_input request for a tensor model is validated as tensors.
        using (var text = TextRequest("disp-tensor", "hi"))
        {
            var e = await Assert.ThrowsAsync<InferenceException>(() => dispatcher.InferAsync(text, CancellationToken.None));
            Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
            Assert.Contains("text_input", e.Message);
        }
        // An unknown model is refused at the lookup, before anything starts.
        using (var unknown = Request("disp-nope"))
        {
            Assert.Equal(InferenceErrorKind.NotFound, Assert.Throws<InferenceException>(() => dispatcher.Dispatch(unknown, CancellationToken.None)).Kind);
        }
    }

    private static InferenceRequest TextRequest(string model, string prompt)
    {
        var request = new InferenceRequest(model) { Id = "t1" };
        using var writer = new TensorWriter(DataType.Bytes, 1);
        writer.WriteBytes(System.Text.Encoding.UTF8.GetBytes(prompt));
        request.AddInput(new Tensor("text_input", DataType.Bytes, [1], writer.Detach()));
        return request;
    }
}
