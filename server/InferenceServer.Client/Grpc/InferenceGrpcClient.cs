using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using InferenceServer.Client.Grpc;

namespace InferenceServer.Client;

/// <summary>
/// The gRPC client (<c>inference.GRPCInferenceService</c>). Inputs travel as <c>raw_input_contents</c>; outputs are read
/// from raw or typed contents, whichever the server sent. Every call about a model carries the <c>x-model-name</c> (and,
/// when a version is given, <c>x-model-version</c>) metadata the Istio VirtualService routes by.
/// </summary>
public sealed class InferenceGrpcClient : IInferenceClient
{
    private static readonly JsonFormatter ProtoJson = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true).WithPreserveProtoFieldNames(true));
    private readonly GrpcChannel? _ownedChannel;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _grpc;
    private readonly InferenceClientOptions _options;
    private readonly CallRunner _runner;

    /// <summary>A client of the server at <paramref name="address"/> (e.g. <c>http://localhost:8001</c>), over its own channel.</summary>
    public InferenceGrpcClient(Uri address, InferenceClientOptions? options = null)
        : this(GrpcChannel.ForAddress(address, new GrpcChannelOptions { MaxReceiveMessageSize = 256 * 1024 * 1024, MaxSendMessageSize = 256 * 1024 * 1024 }),
            options, ownsChannel: true)
    {
    }

    /// <summary>A client over <paramref name="channel"/> (the caller keeps ownership of the channel).</summary>
    public InferenceGrpcClient(ChannelBase channel, InferenceClientOptions? options = null)
        : this(channel, options, ownsChannel: false)
    {
    }

    private InferenceGrpcClient(ChannelBase channel, InferenceClientOptions? options, bool ownsChannel)
    {
        ArgumentNullException.ThrowIfNull(channel);
        _ownedChannel = ownsChannel ? channel as GrpcChannel : null;
        _grpc = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        _options = options ?? new InferenceClientOptions();
        _runner = new CallRunner(_options);
    }

    /// <inheritdoc />
    public Task<bool> ServerLiveAsync(CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync(null, settings, async o => (await _grpc.ServerLiveAsync(new ServerLiveRequest(), o)).Live, cancellationToken);

    /// <inheritdoc />
    public Task<bool> ServerReadyAsync(CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync(null, settings, async o => (await _grpc.ServerReadyAsync(new ServerReadyRequest(), o)).Ready, cancellationToken);

    /// <inheritdoc />
    public Task<bool> ModelReadyAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync((modelName, modelVersion), settings, async o =>
            (await _grpc.ModelReadyAsync(new ModelReadyRequest { Name = modelName, Version = modelVersion ?? "" }, o)).Ready, cancellationToken);

    /// <inheritdoc />
    public Task<ServerMetadata> ServerMetadataAsync(CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync(null, settings, async o =>
        {
            var r = await _grpc.ServerMetadataAsync(new ServerMetadataRequest(), o);
            return new ServerMetadata(r.Name, r.Version, r.Extensions.ToArray());
        }, cancellationToken);

    /// <inheritdoc />
    public Task<ModelMetadata> ModelMetadataAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync((modelName, modelVersion), settings, async o =>
        {
            var r = await _grpc.ModelMetadataAsync(new ModelMetadataRequest { Name = modelName, Version = modelVersion ?? "" }, o);
            static TensorMetadata[] Tensors(IEnumerable<ModelMetadataResponse.Types.TensorMetadata> list) =>
                list.Select(t => new TensorMetadata(t.Name, t.Datatype, t.Shape.ToArray())).ToArray();
            return new ModelMetadata(r.Name, r.Versions.ToArray(), r.Platform, Tensors(r.Inputs), Tensors(r.Outputs));
        }, cancellationToken);

    /// <inheritdoc />
    public Task<JsonElement> ModelConfigAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync((modelName, modelVersion), settings, async o =>
        {
            var r = await _grpc.ModelConfigAsync(new ModelConfigRequest { Name = modelName, Version = modelVersion ?? "" }, o);
            return ToJson(r.Config);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<JsonElement> ModelStatisticsAsync(string? modelName = null, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync(modelName is null ? null : (modelName, modelVersion), settings, async o =>
        {
            var r = await _grpc.ModelStatisticsAsync(new ModelStatisticsRequest { Name = modelName ?? "", Version = modelVersion ?? "" }, o);
            return ToJson(r);
        }, cancellationToken);

    /// <inheritdoc />
    public Task<IReadOnlyList<RepositoryModel>> RepositoryIndexAsync(bool readyOnly = false, CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        CallAsync(null, settings, async o =>
        {
            var r = await _grpc.RepositoryIndexAsync(new RepositoryIndexRequest { Ready = readyOnly }, o);
            return (IReadOnlyList<RepositoryModel>)r.Models.Select(m => new RepositoryModel(m.Name, m.Version, m.State, m.Reason)).ToArray();
        }, cancellationToken);

    /// <inheritdoc />
    public Task<InferResult> InferAsync(InferRequest request, CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var message = BuildInferRequest(request);
        return CallAsync((request.ModelName, request.ModelVersion), settings, async o => ToResult(await _grpc.ModelInferAsync(message, o)), cancellationToken);
    }

    /// <inheritdoc />
    public Task<GenerateResult> GenerateAsync(GenerateRequest request, CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var message = BuildGenerateRequest(request);
        return CallAsync((request.ModelName, request.ModelVersion), settings, async o =>
        {
            // ModelInfer answers text_output alone (as Triton's vLLM backend does); a server that adds finish_reason and the
            // counts as response parameters has them read.
            var c = ToChunk(await _grpc.ModelInferAsync(message, o), final: true);
            return new GenerateResult(c.ModelName, c.ModelVersion, c.TextOutput, c.FinishReason is "" ? null : c.FinishReason, c.PromptTokens, c.CompletionTokens, c.Id);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<GenerateChunk> GenerateStreamAsync(
        GenerateRequest request, CallSettings? settings = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var message = BuildGenerateRequest(request);
        message.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "stream", Datatype = DataType.Bool, Shape = { 1 }, Contents = new InferTensorContents { BoolContents = { true } },
        });
        var timeout = settings?.Timeout ?? _options.DefaultTimeout;
        var options = Options((request.ModelName, request.ModelVersion), settings,
            timeout is { } t ? DateTime.UtcNow + t : null, cancellationToken);
        using var call = _grpc.ModelStreamInfer(options);
        try
        {
            await call.RequestStream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            throw ErrorMapping.FromGrpc(e);
        }
        while (true)
        {
            ModelStreamInferResponse response;
            try
            {
                if (!await call.ResponseStream.MoveNext(cancellationToken).ConfigureAwait(false))
                {
                    yield break;
                }
                response = call.ResponseStream.Current;
            }
            catch (RpcException e)
            {
                throw ErrorMapping.FromGrpc(e);
            }
            if (!string.IsNullOrEmpty(response.ErrorMessage))
            {
                throw new ServerErrorException(response.ErrorMessage, null, StatusCode.Unknown);
            }
            var final = response.InferResponse.Parameters.TryGetValue("triton_final_response", out var f) && f.BoolParam;
            var chunk = ToChunk(response.InferResponse, final);
            yield return chunk;
            if (final)
            {
                yield break;
            }
        }
    }

    /// <inheritdoc />
    public void Dispose() => _ownedChannel?.Dispose();

    private Task<T> CallAsync<T>((string Name, string? Version)? model, CallSettings? settings, Func<CallOptions, Task<T>> call, CancellationToken cancellationToken) =>
        _runner.RunAsync(settings, async (deadline, token) =>
        {
            try
            {
                // gRPC deadlines are on the system clock; the remaining time comes from the client's clock.
                var grpcDeadline = deadline is { } d ? DateTime.UtcNow + (d - _runner.Time.GetUtcNow()) : (DateTime?)null;
                return await call(Options(model, settings, grpcDeadline, token)).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Cancelled && token.IsCancellationRequested)
            {
                // The call's token (its deadline or the caller's cancellation) ended it.
                throw new OperationCanceledException(e.Status.Detail, e, token);
            }
            catch (RpcException e)
            {
                throw ErrorMapping.FromGrpc(e);
            }
        }, cancellationToken);

    private CallOptions Options((string Name, string? Version)? model, CallSettings? settings, DateTime? deadline, CancellationToken token)
    {
        var headers = new Metadata();
        if (model is { } m)
        {
            headers.Add(MeshHeaders.ModelName, m.Name);
            if (!string.IsNullOrEmpty(m.Version))
            {
                headers.Add(MeshHeaders.ModelVersion, m.Version);
            }
        }
        if ((settings?.Tenant ?? _options.Tenant) is { } tenant)
        {
            headers.Add(_options.TenantHeader, tenant);
        }
        if (settings?.RequestId is { } id)
        {
            headers.Add(MeshHeaders.RequestId, id);
        }
        foreach (var (key, value) in settings?.Headers ?? new Dictionary<string, string>())
        {
            headers.Add(key.ToLowerInvariant(), value);
        }
        return new CallOptions(headers, deadline, token);
    }

    private static JsonElement ToJson(IMessage message)
    {
        using var document = JsonDocument.Parse(ProtoJson.Format(message));
        return document.RootElement.Clone();
    }

    private static ModelInferRequest BuildInferRequest(InferRequest request)
    {
        var message = new ModelInferRequest { ModelName = request.ModelName, ModelVersion = request.ModelVersion ?? "", Id = request.Id ?? "" };
        foreach (var (key, value) in request.Parameters)
        {
            message.Parameters[key] = Parameter(key, value);
        }
        foreach (var input in request.Inputs)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = input.Name, Datatype = input.Datatype };
            tensor.Shape.AddRange(input.Shape);
            message.Inputs.Add(tensor);
            message.RawInputContents.Add(ByteString.CopyFrom(input.ToRawBytes()));
        }
        foreach (var output in request.Outputs)
        {
            message.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = output });
        }
        return message;
    }

    private static InferParameter Parameter(string key, object value) => value switch
    {
        bool b => new InferParameter { BoolParam = b },
        string s => new InferParameter { StringParam = s },
        int or long or short or sbyte or byte or ushort or uint => new InferParameter { Int64Param = Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture) },
        ulong u => new InferParameter { Uint64Param = u },
        float or double or decimal => new InferParameter { DoubleParam = Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture) },
        _ => throw new ArgumentException($"parameter '{key}': a {value.GetType().Name} is not a parameter value; use a string, bool, integer or floating point number"),
    };

    /// <summary>The result of a ModelInfer answer, from raw or typed contents (internal for tests).</summary>
    internal static InferResult ToResult(ModelInferResponse response)
    {
        var outputs = new List<Tensor>();
        for (var i = 0; i < response.Outputs.Count; i++)
        {
            var o = response.Outputs[i];
            var shape = o.Shape.ToArray();
            outputs.Add(i < response.RawOutputContents.Count
                ? Tensor.FromRaw(o.Name, o.Datatype, shape, response.RawOutputContents[i].Span)
                : FromContents(o.Name, o.Datatype, shape, o.Contents ?? new InferTensorContents()));
        }
        return new InferResult(response.ModelName, response.ModelVersion, string.IsNullOrEmpty(response.Id) ? null : response.Id, outputs);
    }

    /// <summary>A tensor from typed contents (the form servers use when the request used typed contents).</summary>
    private static Tensor FromContents(string name, string datatype, long[] shape, InferTensorContents c)
    {
        if (datatype == DataType.Bytes)
        {
            return Tensor.FromByteArrays(name, c.BytesContents.Select(b => b.ToByteArray()), shape);
        }
        var size = DataType.ElementSize(datatype);
        var count = datatype switch
        {
            DataType.Bool => c.BoolContents.Count,
            DataType.Int8 or DataType.Int16 or DataType.Int32 => c.IntContents.Count,
            DataType.Int64 => c.Int64Contents.Count,
            DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => c.UintContents.Count,
            DataType.UInt64 => c.Uint64Contents.Count,
            DataType.Fp32 => c.Fp32Contents.Count,
            DataType.Fp64 => c.Fp64Contents.Count,
            _ => throw new InferenceServerException($"output '{name}': {datatype} has no typed contents and the server sent no raw contents", null, null),
        };
        var raw = new byte[count * size];
        for (var i = 0; i < count; i++)
        {
            var d = raw.AsSpan(i * size, size);
            switch (datatype)
            {
                case DataType.Bool: d[0] = c.BoolContents[i] ? (byte)1 : (byte)0; break;
                case DataType.Int8: d[0] = unchecked((byte)(sbyte)c.IntContents[i]); break;
                case DataType.Int16: BinaryPrimitives.WriteInt16LittleEndian(d, (short)c.IntContents[i]); break;
                case DataType.Int32: BinaryPrimitives.WriteInt32LittleEndian(d, c.IntContents[i]); break;
                case DataType.Int64: BinaryPrimitives.WriteInt64LittleEndian(d, c.Int64Contents[i]); break;
                case DataType.UInt8: d[0] = (byte)c.UintContents[i]; break;
                case DataType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(d, (ushort)c.UintContents[i]); break;
                case DataType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(d, c.UintContents[i]); break;
                case DataType.UInt64: BinaryPrimitives.WriteUInt64LittleEndian(d, c.Uint64Contents[i]); break;
                case DataType.Fp32: BinaryPrimitives.WriteSingleLittleEndian(d, c.Fp32Contents[i]); break;
                case DataType.Fp64: BinaryPrimitives.WriteDoubleLittleEndian(d, c.Fp64Contents[i]); break;
            }
        }
        return Tensor.FromRaw(name, datatype, shape, raw);
    }

    private static ModelInferRequest BuildGenerateRequest(GenerateRequest request)
    {
        var message = new ModelInferRequest { ModelName = request.ModelName, ModelVersion = request.ModelVersion ?? "", Id = request.Id ?? "" };
        message.Inputs.Add(new ModelInferRequest.Types.InferInputTensor
        {
            Name = "text_input", Datatype = DataType.Bytes, Shape = { 1 },
            Contents = new InferTensorContents { BytesContents = { ByteString.CopyFromUtf8(request.TextInput) } },
        });
        var p = request.Parameters;
        if (p.MaxTokens is { } maxTokens) { message.Parameters["max_tokens"] = new InferParameter { Int64Param = maxTokens }; }
        if (p.Temperature is { } temperature) { message.Parameters["temperature"] = new InferParameter { DoubleParam = temperature }; }
        if (p.TopP is { } topP) { message.Parameters["top_p"] = new InferParameter { DoubleParam = topP }; }
        if (p.TopK is { } topK) { message.Parameters["top_k"] = new InferParameter { Int64Param = topK }; }
        if (p.Seed is { } seed) { message.Parameters["seed"] = new InferParameter { Int64Param = seed }; }
        if (p.IgnoreEos is { } ignoreEos) { message.Parameters["ignore_eos"] = new InferParameter { BoolParam = ignoreEos }; }
        if (p.Stop.Count > 0) { message.Parameters["stop"] = new InferParameter { StringParam = p.Stop[0] }; }
        return message;
    }

    private static GenerateChunk ToChunk(ModelInferResponse response, bool final)
    {
        var text = "";
        var index = response.Outputs.ToList().FindIndex(o => o.Name == "text_output");
        if (index >= 0)
        {
            var output = index < response.RawOutputContents.Count
                ? Tensor.FromRaw("text_output", DataType.Bytes, response.Outputs[index].Shape.ToArray(), response.RawOutputContents[index].Span)
                : FromContents("text_output", DataType.Bytes, response.Outputs[index].Shape.ToArray(), response.Outputs[index].Contents ?? new InferTensorContents());
            text = string.Concat(output.ToStrings());
        }
        var p = response.Parameters;
        string? finish = p.TryGetValue("finish_reason", out var f) ? f.StringParam : null;
        if (final && finish is null)
        {
            finish = "";
        }
        int? Count(string key) => p.TryGetValue(key, out var v) ? (int)v.Int64Param : null;
        return new GenerateChunk(response.ModelName, response.ModelVersion, text, final ? finish : null,
            Count("prompt_tokens"), Count("completion_tokens"), string.IsNullOrEmpty(response.Id) ? null : response.Id);
    }
}
