using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using InferenceServer.Protocol;
using InferenceServer.Tests.Infrastructure;

namespace InferenceServer.Tests.Integration;

/// <summary>Generative models over gRPC: ModelInfer answers the whole text; ModelStreamInfer streams it, concurrently per call.</summary>
public sealed class GenerationGrpcTests(GenerationServerFixture fixture) : IClassFixture<GenerationServerFixture>
{
    private GRPCInferenceService.GRPCInferenceServiceClient Grpc => fixture.Server.Grpc;

    private static ModelInferRequest TextRequest(string model, string prompt, bool raw, string id = "", long[]? shape = null)
    {
        var request = new ModelInferRequest { ModelName = model, Id = id };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "text_input", Datatype = "BYTES", Shape = { shape ?? [1] } };
        if (raw)
        {
            request.RawInputContents.Add(ByteString.CopyFrom(LengthPrefixed(prompt)));
        }
        else
        {
            input.Contents = new InferTensorContents { BytesContents = { ByteString.CopyFromUtf8(prompt) } };
        }
        request.Inputs.Add(input);
        return request;
    }

    private static byte[] LengthPrefixed(string text)
    {
        var bytes = new byte[4 + Encoding.UTF8.GetByteCount(text)];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)(bytes.Length - 4));
        Encoding.UTF8.GetBytes(text, bytes.AsSpan(4));
        return bytes;
    }

    private static string TextOutput(ModelInferResponse response)
    {
        var output = Assert.Single(response.Outputs);
        Assert.Equal("text_output", output.Name);
        Assert.Equal("BYTES", output.Datatype);
        Assert.Equal([1L], output.Shape);
        if (response.RawOutputContents.Count > 0)
        {
            var raw = Assert.Single(response.RawOutputContents).Span;
            Assert.Equal(raw.Length - 4, (int)BinaryPrimitives.ReadUInt32LittleEndian(raw));
            return Encoding.UTF8.GetString(raw[4..]);
        }
        return Assert.Single(output.Contents.BytesContents).ToStringUtf8();
    }

    private static bool IsFinal(ModelStreamInferResponse response) =>
        response.InferResponse.Parameters.TryGetValue("triton_final_response", out var final) && final.BoolParam;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ModelInfer_returns_the_whole_text_and_passes_the_parameters(bool raw)
    {
        var prompt = $"grpc infer {raw}";
        var request = TextRequest("tiny", prompt, raw, id: "g-1", shape: [1, 1]);
        request.Parameters["max_tokens"] = new InferParameter { Int64Param = 4 };
        request.Parameters["temperature"] = new InferParameter { DoubleParam = 0.5 };
        request.Parameters["top_p"] = new InferParameter { DoubleParam = 0.75 };
        request.Parameters["top_k"] = new InferParameter { Int64Param = 2 };
        request.Parameters["seed"] = new InferParameter { Int64Param = 5 };
        request.Parameters["stop"] = new InferParameter { StringParam = "END" };
        request.Parameters["ignore_eos"] = new InferParameter { BoolParam = true };
        request.Parameters["priority"] = new InferParameter { Int64Param = 1 }; // Triton's own; ignored

        var response = await Grpc.ModelInferAsync(request);
        Assert.Equal("tiny", response.ModelName);
        Assert.Equal("1", response.ModelVersion);
        Assert.Equal("g-1", response.Id);
        Assert.Equal(raw, response.RawOutputContents.Count > 0);
        Assert.Equal(GenerationServerFixture.Text, TextOutput(response));

        var generation = fixture.Fake.Single(prompt).Request;
        Assert.Equal(prompt, generation.Prompt);
        Assert.Equal(4, generation.MaxTokens);
        Assert.Equal(0.5f, generation.Sampling.Temperature);
        Assert.Equal(0.75f, generation.Sampling.TopP);
        Assert.Equal(2, generation.Sampling.TopK);
        Assert.Equal(5UL, generation.Sampling.Seed);
        Assert.Equal(["END"], generation.Stop);
        Assert.True(generation.IgnoreEos);
        Assert.Equal("g-1", generation.Id);
    }

    [Fact]
    public async Task ModelInfer_takes_a_max_tokens_input_like_Triton_vLLM()
    {
        var request = TextRequest("tiny", "max tokens input", raw: true);
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "max_tokens", Datatype = "INT32", Shape = { 1 } });
        request.RawInputContents.Add(ByteString.CopyFrom(BitConverter.GetBytes(6)));
        request.Parameters["max_tokens"] = new InferParameter { Int64Param = 100 };
        await Grpc.ModelInferAsync(request);
        Assert.Equal(6, fixture.Fake.Single("max tokens input").Request.MaxTokens);
    }

    [Fact]
    public async Task ModelInfer_errors_are_status_codes()
    {
        var missing = new ModelInferRequest { ModelName = "tiny" };
        var e = await Assert.ThrowsAsync<RpcException>(() => Grpc.ModelInferAsync(missing).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("text_input", e.Status.Detail);

        var unknownInput = TextRequest("tiny", "x", raw: false);
        unknownInput.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "temperature", Datatype = "FP32", Shape = { 1 }, Contents = new InferTensorContents { Fp32Contents = { 1f } } });
        e = await Assert.ThrowsAsync<RpcException>(() => Grpc.ModelInferAsync(unknownInput).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("temperature", e.Status.Detail);

        var badParameter = TextRequest("tiny", "x", raw: false);
        badParameter.Parameters["top_p"] = new InferParameter { StringParam = "high" };
        e = await Assert.ThrowsAsync<RpcException>(() => Grpc.ModelInferAsync(badParameter).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("top_p", e.Status.Detail);

        var call = Grpc.ModelInferAsync(TextRequest("busy", "queue full", raw: true));
        e = await Assert.ThrowsAsync<RpcException>(() => call.ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Equal("1000", e.Trailers.GetValue("grpc-retry-pushback-ms"));

        e = await Assert.ThrowsAsync<RpcException>(() => Grpc.ModelInferAsync(TextRequest("broken", "x", raw: true)).ResponseAsync);
        Assert.Equal(StatusCode.Internal, e.StatusCode);
        Assert.Contains("device lost", e.Status.Detail);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ModelStreamInfer_streams_pieces_then_a_final_response(bool raw)
    {
        using var call = Grpc.ModelStreamInfer();
        await call.RequestStream.WriteAsync(TextRequest("tiny", $"grpc stream {raw}", raw, id: "s-1"));
        await call.RequestStream.CompleteAsync();
        var responses = await call.ResponseStream.ReadAllAsync().ToListAsync();

        Assert.All(responses, r =>
        {
            Assert.Equal("", r.ErrorMessage);
            Assert.Equal("s-1", r.InferResponse.Id);
            Assert.Equal("tiny", r.InferResponse.ModelName);
            Assert.Equal(raw, r.InferResponse.RawOutputContents.Count > 0);
        });
        Assert.Equal(["Hel", "lo", " wor", "ld"], responses.Select(r => TextOutput(r.InferResponse)));
        Assert.Equal([false, false, false, true], responses.Select(IsFinal));
        Assert.All(responses, r => Assert.True(r.InferResponse.Parameters.ContainsKey("triton_final_response")));
        var final = responses[^1].InferResponse.Parameters;
        Assert.Equal("stop", final["finish_reason"].StringParam);
        Assert.Equal(7, final["prompt_tokens"].Int64Param);
        Assert.Equal(5, final["completion_tokens"].Int64Param);

        var whole = await Grpc.ModelInferAsync(TextRequest("tiny", "grpc whole", raw));
        Assert.Equal(TextOutput(whole), string.Concat(responses.Select(r => TextOutput(r.InferResponse))));
    }

    [Fact]
    public async Task ModelStreamInfer_with_stream_false_answers_once()
    {
        using var call = Grpc.ModelStreamInfer();
        var request = TextRequest("tiny-length", "not streamed", raw: false, id: "once");
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "stream", Datatype = "BOOL", Shape = { 1 }, Contents = new InferTensorContents { BoolContents = { false } } });
        await call.RequestStream.WriteAsync(request);
        await call.RequestStream.CompleteAsync();
        var response = Assert.Single(await call.ResponseStream.ReadAllAsync().ToListAsync());
        Assert.True(IsFinal(response));
        Assert.Equal("abcd", TextOutput(response.InferResponse));
        Assert.Equal("length", response.InferResponse.Parameters["finish_reason"].StringParam);
    }

    [Fact]
    public async Task Generations_on_one_stream_run_concurrently()
    {
        using var call = Grpc.ModelStreamInfer();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // "gated" produces nothing until the test opens its gate; "tiny", sent after it on the same call, must not wait for it.
        await call.RequestStream.WriteAsync(TextRequest("gated", "held back", raw: true, id: "held"));
        await call.RequestStream.WriteAsync(TextRequest("tiny", "goes first", raw: true, id: "free"));
        var seen = new List<ModelStreamInferResponse>();
        while (!seen.Any(r => r.InferResponse.Id == "free" && IsFinal(r)))
        {
            Assert.True(await call.ResponseStream.MoveNext(timeout.Token));
            seen.Add(call.ResponseStream.Current);
        }
        Assert.DoesNotContain(seen, r => r.InferResponse.Id == "held");

        fixture.Gate.TrySetResult();
        await call.RequestStream.CompleteAsync();
        while (await call.ResponseStream.MoveNext(timeout.Token))
        {
            seen.Add(call.ResponseStream.Current);
        }
        var held = seen.Where(r => r.InferResponse.Id == "held").ToList();
        Assert.Equal(GenerationServerFixture.Text, string.Concat(held.Select(r => TextOutput(r.InferResponse))));
        Assert.True(IsFinal(held[^1]));
        Assert.Single(held, IsFinal);
    }

    [Fact]
    public async Task Stream_errors_are_reported_in_band_and_the_stream_goes_on()
    {
        using var call = Grpc.ModelStreamInfer();
        await call.RequestStream.WriteAsync(TextRequest("busy", "x", raw: true, id: "busy"));
        await call.RequestStream.WriteAsync(TextRequest("broken", "x", raw: true, id: "broken"));
        await call.RequestStream.WriteAsync(new ModelInferRequest { ModelName = "tiny", Id = "no-input" });
        await call.RequestStream.WriteAsync(TextRequest("no_such_model", "x", raw: true, id: "tensor"));
        await call.RequestStream.WriteAsync(TextRequest("tiny", "after errors", raw: true, id: "ok"));
        await call.RequestStream.CompleteAsync();
        var responses = await call.ResponseStream.ReadAllAsync().ToListAsync();

        var busy = Assert.Single(responses, r => r.InferResponse.Id == "busy");
        Assert.Contains("queue", busy.ErrorMessage);
        Assert.True(IsFinal(busy));

        var broken = responses.Where(r => r.InferResponse.Id == "broken").ToList();
        Assert.Equal("par", TextOutput(broken[0].InferResponse));
        Assert.Contains("device lost", broken[^1].ErrorMessage);
        Assert.True(IsFinal(broken[^1]));

        Assert.Contains("text_input", Assert.Single(responses, r => r.InferResponse.Id == "no-input").ErrorMessage);
        // A request for a model the generator does not serve takes the tensor path, as before.
        Assert.Contains("no_such_model", Assert.Single(responses, r => r.InferResponse.Id == "tensor").ErrorMessage);

        var ok = responses.Where(r => r.InferResponse.Id == "ok").ToList();
        Assert.All(ok, r => Assert.Equal("", r.ErrorMessage));
        Assert.Equal(GenerationServerFixture.Text, string.Concat(ok.Select(r => TextOutput(r.InferResponse))));
    }
}
