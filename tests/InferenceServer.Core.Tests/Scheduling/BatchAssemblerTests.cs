using System.Runtime.InteropServices;
using System.Text;
using InferenceServer.Inference;
using InferenceServer.Scheduling;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Core.Scheduling;

/// <summary>Gather (the one copy of a batch's inputs) and scatter (each request's rows as slices of the outputs).</summary>
public sealed class BatchAssemblerTests
{
    private static InferenceRequest Request(string id, params Tensor[] inputs)
    {
        var request = new InferenceRequest("m") { Id = id };
        foreach (var input in inputs)
        {
            request.AddInput(input);
        }
        return request;
    }

    private static Tensor Floats(string name, long rows, params float[] values) =>
        new(name, DataType.Fp32, [rows, values.Length / rows], TensorBuffer.CopyOf(MemoryMarshal.AsBytes(values.AsSpan())));

    private static Tensor Strings(string name, params string[] values)
    {
        using var writer = new TensorWriter(DataType.Bytes, values.Length);
        foreach (var value in values)
        {
            writer.WriteBytes(Encoding.UTF8.GetBytes(value));
        }
        return new Tensor(name, DataType.Bytes, [values.Length], writer.Detach());
    }

    private static PendingRequest Pending(InferenceRequest request) => new(request, request.Inputs[0].Shape[0], 0, 0);

    [Fact]
    public void Requests_share_a_batch_when_inputs_agree_past_the_batch_dimension_and_outputs_are_the_same()
    {
        using var a = Request("a", Floats("x", 1, 1, 2));
        using var b = Request("b", Floats("x", 2, 1, 2, 3, 4));
        using var wider = Request("c", Floats("x", 1, 1, 2, 3));
        using var other = Request("d", Floats("y", 1, 1, 2));
        using var asksOutput = Request("e", Floats("x", 1, 1, 2));
        asksOutput.RequestedOutputs.Add("z");
        Assert.True(BatchAssembler.CanShareBatch(a, b));
        Assert.False(BatchAssembler.CanShareBatch(a, wider));
        Assert.False(BatchAssembler.CanShareBatch(a, other));
        Assert.False(BatchAssembler.CanShareBatch(a, asksOutput));
    }

    [Fact]
    public void Gather_concatenates_every_input_along_the_batch_dimension_and_scatter_gives_each_request_its_rows()
    {
        using var a = Request("a", Floats("x", 1, 1, 2), Strings("s", "one"));
        using var b = Request("b", Floats("x", 2, 3, 4, 5, 6), Strings("s", "two", "three"));
        var batch = new List<PendingRequest> { Pending(a), Pending(b) };
        var gathered = new List<Tensor>();
        BatchAssembler.Gather(batch, 3, gathered);
        try
        {
            Assert.Equal([3L, 2], gathered[0].Shape);
            Assert.Equal([1f, 2, 3, 4, 5, 6], gathered[0].Elements<float>().ToArray());
            Assert.Equal([3L], gathered[1].Shape);
            Assert.True(BytesElements.TryCount(gathered[1].Data.Span, out var count));
            Assert.Equal(3, count);

            // The engine's outputs: the rows doubled, the strings as they came.
            using var doubled = Floats("y", 3, 2, 4, 6, 8, 10, 12);
            var responses = new[] { new InferenceResponse("m", "1", "a"), new InferenceResponse("m", "1", "b") };
            BatchAssembler.Scatter([doubled, gathered[1]], batch, 3, responses);
            using (responses[0])
            using (responses[1])
            {
                Assert.Equal([1L, 2], responses[0].Outputs[0].Shape);
                Assert.Equal([2f, 4], responses[0].Outputs[0].Elements<float>().ToArray());
                Assert.Equal([2L, 2], responses[1].Outputs[0].Shape);
                Assert.Equal([6f, 8, 10, 12], responses[1].Outputs[0].Elements<float>().ToArray());
                Assert.Equal(Encoding.UTF8.GetBytes("one"), Read(responses[0].Outputs[1]).Single());
                Assert.Equal(["two", "three"], Read(responses[1].Outputs[1]).Select(Encoding.UTF8.GetString));
            }
        }
        finally
        {
            gathered.ForEach(t => t.Dispose());
        }
    }

    [Fact]
    public void An_output_without_the_batch_as_its_first_dimension_is_the_engines_failure()
    {
        using var a = Request("a", Floats("x", 1, 1, 2));
        using var b = Request("b", Floats("x", 1, 3, 4));
        var batch = new List<PendingRequest> { Pending(a), Pending(b) };
        using var wrong = Floats("y", 1, 1, 2, 3, 4);
        var responses = new[] { new InferenceResponse("m", "1", "a"), new InferenceResponse("m", "1", "b") };
        var error = Assert.Throws<InferenceException>(() => BatchAssembler.Scatter([wrong], batch, 2, responses));
        Assert.Equal(InferenceErrorKind.Internal, error.Kind);
        Assert.Contains("output 'y'", error.Message, StringComparison.Ordinal);
    }

    private static List<byte[]> Read(Tensor tensor)
    {
        var list = new List<byte[]>();
        ReadOnlySpan<byte> data = tensor.Data.Span;
        while (!data.IsEmpty)
        {
            list.Add(BytesElements.ReadNext(ref data).ToArray());
        }
        return list;
    }
}
