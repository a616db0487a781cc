using System.Buffers.Binary;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using InferenceServer.Generation;
using InferenceServer.Inference;
using InferenceServer.Protocol;

namespace InferenceServer.Grpc;

/// <summary>
/// A generative request on ModelStreamInfer, as Triton's decoupled models answer it: one response per piece of text
/// (output <c>text_output</c>, the delta, with <c>triton_final_response</c> false), then a final response
/// (<c>triton_final_response</c> true) carrying <c>finish_reason</c>, <c>prompt_tokens</c> and <c>completion_tokens</c>.
/// Each response echoes the request's id, so a client can tell concurrent generations on one stream apart.
/// </summary>
internal sealed partial class GrpcGeneration(ILogger logger)
{
    public const string FinalResponse = "triton_final_response";

    /// <summary>
    /// Writes one generation's responses through <paramref name="writer"/> once <paramref name="generation"/> is
    /// admitted; <paramref name="streamed"/> false asks for the whole text in the one, final, response. Never throws:
    /// errors are sent in-band.
    /// </summary>
    public async Task StreamAsync(
        ModelInferRequest request, Task<GenerationStream> generation, bool? streamed, StreamResponseWriter writer, CancellationToken cancellationToken)
    {
        var raw = request.RawInputContents.Count > 0;
        try
        {
            var stream = await generation;
            if (streamed == false)
            {
                var result = await GenerationResult.ReadAsync(stream, cancellationToken);
                await writer.WriteAsync(Final(request, stream, result.Text, result.FinishReason, result.Usage.CompletionTokens, raw), cancellationToken);
                return;
            }
            var finish = FinishReason.None;
            var completionTokens = 0;
            await foreach (var chunk in stream.Chunks.ReadAllAsync(cancellationToken))
            {
                completionTokens = chunk.CompletionTokens;
                finish = chunk.FinishReason;
                if (finish != FinishReason.None)
                {
                    if (finish != FinishReason.Cancelled)
                    {
                        await writer.WriteAsync(Final(request, stream, chunk.Text, finish, completionTokens, raw), cancellationToken);
                    }
                    break;
                }
                if (chunk.Text.Length > 0)
                {
                    var response = Response(request, stream, chunk.Text, raw);
                    response.InferResponse.Parameters[FinalResponse] = new InferParameter { BoolParam = false };
                    await writer.WriteAsync(response, cancellationToken);
                }
            }
            if (finish is FinishReason.None or FinishReason.Cancelled)
            {
                finish = GenerationResult.Finished(finish, cancellationToken);
                await writer.WriteAsync(Final(request, stream, "", finish, completionTokens, raw), cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The call ended; there is no one to answer.
        }
        catch (Exception e)
        {
            string message;
            if (e is InferenceException inference)
            {
                message = inference.Message;
            }
            else
            {
                Log.Unhandled(logger, request.ModelName, e);
                message = "internal server error";
            }
            var error = new ModelStreamInferResponse { ErrorMessage = message, InferResponse = new ModelInferResponse { Id = request.Id, ModelName = request.ModelName } };
            error.InferResponse.Parameters[FinalResponse] = new InferParameter { BoolParam = true };
            try
            {
                await writer.WriteAsync(error, cancellationToken);
            }
            catch (Exception) when (cancellationToken.IsCancellationRequested)
            {
                // The call ended meanwhile.
            }
        }
    }

    private static ModelStreamInferResponse Final(ModelInferRequest request, GenerationStream stream, string text, FinishReason finish, int completionTokens, bool raw)
    {
        var response = Response(request, stream, text, raw);
        var parameters = response.InferResponse.Parameters;
        parameters[FinalResponse] = new InferParameter { BoolParam = true };
        parameters["finish_reason"] = new InferParameter { StringParam = finish.Name() };
        parameters["prompt_tokens"] = new InferParameter { Int64Param = stream.PromptTokens };
        parameters["completion_tokens"] = new InferParameter { Int64Param = completionTokens };
        return response;
    }

    /// <summary>A response with <c>text_output</c> (BYTES, shape [1]), raw when the request was raw.</summary>
    private static ModelStreamInferResponse Response(ModelInferRequest request, GenerationStream stream, string text, bool raw)
    {
        var message = new ModelInferResponse { ModelName = stream.ModelName, ModelVersion = stream.ModelVersion, Id = request.Id };
        if (stream.FallbackFor is { } requested)
        {
            // The breaker of the model asked for is open: its fallback model serves, and each response says so.
            message.Parameters[Protocol.RequestMetadata.ServedByModelParameter] = new InferParameter { StringParam = stream.ServedBy };
            message.Parameters[Protocol.RequestMetadata.FallbackForParameter] = new InferParameter { StringParam = requested };
        }
        var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = TextTensors.TextOutput, Datatype = "BYTES", Shape = { 1 } };
        if (raw)
        {
            var bytes = new byte[4 + Encoding.UTF8.GetByteCount(text)];
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, (uint)(bytes.Length - 4));
            Encoding.UTF8.GetBytes(text, bytes.AsSpan(4));
            message.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(bytes));
        }
        else
        {
            tensor.Contents = new InferTensorContents { BytesContents = { ByteString.CopyFromUtf8(text) } };
        }
        message.Outputs.Add(tensor);
        return new ModelStreamInferResponse { InferResponse = message };
    }

    private static partial class Log
    {
        [LoggerMessage(2, LogLevel.Error, "Unhandled error generating with {Model} on ModelStreamInfer")]
        public static partial void Unhandled(ILogger logger, string model, Exception exception);
    }
}

/// <summary>The response side of one ModelStreamInfer call, shared by the generations running on it: one write at a time.</summary>
internal sealed class StreamResponseWriter(IServerStreamWriter<ModelStreamInferResponse> stream) : IDisposable
{
    private readonly SemaphoreSlim _gate = new(1, 1);

    public async Task WriteAsync(ModelStreamInferResponse response, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            await stream.WriteAsync(response, cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose() => _gate.Dispose();
}
