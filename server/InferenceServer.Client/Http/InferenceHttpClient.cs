using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;

namespace InferenceServer.Client;

/// <summary>
/// The REST client (KServe v2 JSON, with Triton's binary tensor data extension for large tensors and BF16, and Triton's
/// generate extension).
/// </summary>
public sealed class InferenceHttpClient : IInferenceClient
{
    private const string HeaderLength = "Inference-Header-Content-Length";
    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly InferenceClientOptions _options;
    private readonly CallRunner _runner;

    /// <summary>A client of the server at <paramref name="baseAddress"/> (e.g. <c>http://localhost:8000</c>).</summary>
    public InferenceHttpClient(Uri baseAddress, InferenceClientOptions? options = null)
        : this(new HttpClient { BaseAddress = baseAddress, Timeout = Timeout.InfiniteTimeSpan }, options, ownsHttpClient: true)
    {
    }

    /// <summary>A client over <paramref name="http"/>, whose <see cref="HttpClient.BaseAddress"/> is the server's REST address.</summary>
    public InferenceHttpClient(HttpClient http, InferenceClientOptions? options = null, bool ownsHttpClient = false)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (http.BaseAddress is null)
        {
            throw new ArgumentException("the HttpClient needs a BaseAddress (the server's REST address, e.g. http://localhost:8000)", nameof(http));
        }
        _http = http;
        _ownsHttp = ownsHttpClient;
        _options = options ?? new InferenceClientOptions();
        _runner = new CallRunner(_options);
    }

    /// <inheritdoc />
    public async Task<bool> ServerLiveAsync(CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        var (status, _) = await SendForStatusAsync(HttpMethod.Get, "v2/health/live", null, null, settings, cancellationToken).ConfigureAwait(false);
        return status == HttpStatusCode.OK;
    }

    /// <inheritdoc />
    public async Task<bool> ServerReadyAsync(CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        var (status, _) = await SendForStatusAsync(HttpMethod.Get, "v2/health/ready", null, null, settings, cancellationToken).ConfigureAwait(false);
        return status == HttpStatusCode.OK;
    }

    /// <inheritdoc />
    public async Task<bool> ModelReadyAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        var (status, _) = await SendForStatusAsync(HttpMethod.Get, ModelPath(modelName, modelVersion) + "/ready", null,
            (modelName, modelVersion), settings, cancellationToken).ConfigureAwait(false);
        return status == HttpStatusCode.OK;
    }

    /// <inheritdoc />
    public async Task<ServerMetadata> ServerMetadataAsync(CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        var json = await SendJsonAsync(HttpMethod.Get, "v2", null, null, settings, cancellationToken).ConfigureAwait(false);
        return new ServerMetadata(
            Str(json, "name"), Str(json, "version"),
            json.TryGetProperty("extensions", out var e) ? e.EnumerateArray().Select(x => x.GetString()!).ToArray() : []);
    }

    /// <inheritdoc />
    public async Task<ModelMetadata> ModelMetadataAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        var json = await SendJsonAsync(HttpMethod.Get, ModelPath(modelName, modelVersion), null, (modelName, modelVersion), settings, cancellationToken).ConfigureAwait(false);
        static IReadOnlyList<TensorMetadata> Tensors(JsonElement json, string property) =>
            json.TryGetProperty(property, out var list)
                ? list.EnumerateArray().Select(t => new TensorMetadata(Str(t, "name"), Str(t, "datatype"),
                    t.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray())).ToArray()
                : [];
        return new ModelMetadata(
            Str(json, "name"),
            json.TryGetProperty("versions", out var v) ? v.EnumerateArray().Select(x => x.GetString()!).ToArray() : [],
            Str(json, "platform"), Tensors(json, "inputs"), Tensors(json, "outputs"));
    }

    /// <inheritdoc />
    public Task<JsonElement> ModelConfigAsync(string modelName, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        SendJsonAsync(HttpMethod.Get, ModelPath(modelName, modelVersion) + "/config", null, (modelName, modelVersion), settings, cancellationToken);

    /// <inheritdoc />
    public Task<JsonElement> ModelStatisticsAsync(string? modelName = null, string? modelVersion = null, CallSettings? settings = null, CancellationToken cancellationToken = default) =>
        modelName is null
            ? SendJsonAsync(HttpMethod.Get, "v2/models/stats", null, null, settings, cancellationToken)
            : SendJsonAsync(HttpMethod.Get, ModelPath(modelName, modelVersion) + "/stats", null, (modelName, modelVersion), settings, cancellationToken);

    /// <inheritdoc />
    public async Task<IReadOnlyList<RepositoryModel>> RepositoryIndexAsync(bool readyOnly = false, CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        var body = readyOnly ? "{\"ready\":true}" : "{}";
        var json = await SendJsonAsync(HttpMethod.Post, "v2/repository/index", () => JsonContent(body), null, settings, cancellationToken).ConfigureAwait(false);
        return json.EnumerateArray().Select(m => new RepositoryModel(
            Str(m, "name"), Str(m, "version"), Str(m, "state"), m.TryGetProperty("reason", out var r) ? r.GetString() ?? "" : "")).ToArray();
    }

    /// <inheritdoc />
    public Task<InferResult> InferAsync(InferRequest request, CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var (header, binary) = BuildInferBody(request);
        return _runner.RunAsync(settings, async (_, token) =>
        {
            using var message = NewRequest(HttpMethod.Post, ModelPath(request.ModelName, request.ModelVersion) + "/infer",
                (request.ModelName, request.ModelVersion), settings);
            var content = new ByteArrayContent(binary.Length == 0 ? header : [.. header, .. binary]);
            content.Headers.ContentType = new MediaTypeHeaderValue(binary.Length == 0 ? "application/json" : "application/octet-stream");
            if (binary.Length > 0)
            {
                content.Headers.Add(HeaderLength, header.Length.ToString(CultureInfo.InvariantCulture));
            }
            message.Content = content;
            using var response = await SendAsync(message, HttpCompletionOption.ResponseContentRead, token).ConfigureAwait(false);
            var bytes = await response.Content.ReadAsByteArrayAsync(token).ConfigureAwait(false);
            ThrowIfError(response, bytes);
            return ParseInferResponse(response, bytes);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public Task<GenerateResult> GenerateAsync(GenerateRequest request, CallSettings? settings = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = GenerateBody(request);
        return _runner.RunAsync(settings, async (_, token) =>
        {
            using var message = NewRequest(HttpMethod.Post, ModelPath(request.ModelName, request.ModelVersion) + "/generate",
                (request.ModelName, request.ModelVersion), settings);
            message.Content = JsonContent(body);
            using var response = await SendAsync(message, HttpCompletionOption.ResponseContentRead, token).ConfigureAwait(false);
            var bytes = await response.Content.ReadAsByteArrayAsync(token).ConfigureAwait(false);
            ThrowIfError(response, bytes);
            using var document = JsonDocument.Parse(bytes);
            var c = ParseChunk(document.RootElement);
            return new GenerateResult(c.ModelName, c.ModelVersion, c.TextOutput, c.FinishReason, c.PromptTokens, c.CompletionTokens, c.Id);
        }, cancellationToken);
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<GenerateChunk> GenerateStreamAsync(
        GenerateRequest request, CallSettings? settings = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var body = GenerateBody(request);
        var timeout = settings?.Timeout ?? _options.DefaultTimeout;
        using var deadline = timeout is { } t ? new CancellationTokenSource(t, _options.TimeProvider) : new CancellationTokenSource();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        // The connection (and an error answer before the stream starts) is retried; a started stream is not.
        var response = await _runner.RunAsync(settings, async (_, token) =>
        {
            var message = NewRequest(HttpMethod.Post, ModelPath(request.ModelName, request.ModelVersion) + "/generate_stream",
                (request.ModelName, request.ModelVersion), settings);
            message.Content = JsonContent(body);
            var answer = await SendAsync(message, HttpCompletionOption.ResponseHeadersRead, token).ConfigureAwait(false);
            if (!answer.IsSuccessStatusCode)
            {
                using (answer)
                {
                    var bytes = await answer.Content.ReadAsByteArrayAsync(token).ConfigureAwait(false);
                    ThrowIfError(answer, bytes);
                }
            }
            return answer;
        }, linked.Token).ConfigureAwait(false);
        using (response)
        {
            Stream stream;
            try
            {
                stream = await response.Content.ReadAsStreamAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException e) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DeadlineExceededException("the call's deadline passed while streaming", null, null, e);
            }
            using var reader = new StreamReader(stream, Encoding.UTF8);
            while (true)
            {
                string? line;
                try
                {
                    line = await reader.ReadLineAsync(linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException e) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw new DeadlineExceededException("the call's deadline passed while streaming", null, null, e);
                }
                if (line is null)
                {
                    yield break;
                }
                if (!line.StartsWith("data:", StringComparison.Ordinal))
                {
                    continue;
                }
                var data = line[5..].Trim();
                if (data.Length == 0 || data == "[DONE]")
                {
                    continue;
                }
                GenerateChunk chunk;
                using (var document = JsonDocument.Parse(data))
                {
                    if (document.RootElement.TryGetProperty("error", out var error))
                    {
                        throw new ServerErrorException(
                            error.ValueKind == JsonValueKind.String ? error.GetString()! : error.GetRawText(), response.StatusCode, null);
                    }
                    chunk = ParseChunk(document.RootElement);
                }
                yield return chunk;
                if (chunk.IsFinal)
                {
                    yield break;
                }
            }
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }

    private static string ModelPath(string modelName, string? modelVersion)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelName);
        var path = "v2/models/" + Uri.EscapeDataString(modelName);
        return string.IsNullOrEmpty(modelVersion) ? path : path + "/versions/" + Uri.EscapeDataString(modelVersion);
    }

    private static StringContent JsonContent(string json) => new(json, Encoding.UTF8, "application/json");

    private static string Str(JsonElement json, string property) =>
        json.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";

    private HttpRequestMessage NewRequest(HttpMethod method, string path, (string Name, string? Version)? model, CallSettings? settings)
    {
        var message = new HttpRequestMessage(method, path);
        if (model is { } m)
        {
            message.Headers.TryAddWithoutValidation(MeshHeaders.ModelName, m.Name);
            if (!string.IsNullOrEmpty(m.Version))
            {
                message.Headers.TryAddWithoutValidation(MeshHeaders.ModelVersion, m.Version);
            }
        }
        if ((settings?.Tenant ?? _options.Tenant) is { } tenant)
        {
            message.Headers.TryAddWithoutValidation(_options.TenantHeader, tenant);
        }
        if (settings?.RequestId is { } id)
        {
            message.Headers.TryAddWithoutValidation(MeshHeaders.RequestId, id);
        }
        foreach (var (key, value) in settings?.Headers ?? new Dictionary<string, string>())
        {
            message.Headers.TryAddWithoutValidation(key, value);
        }
        return message;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage message, HttpCompletionOption completion, CancellationToken token)
    {
        try
        {
            return await _http.SendAsync(message, completion, token).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            // No answer (refused, reset): the server may be going away; another attempt (or replica) may serve it.
            throw new UnavailableException($"could not reach the server at {_http.BaseAddress}: {e.Message}", null, null, e);
        }
        catch (TaskCanceledException e) when (!token.IsCancellationRequested && e.InnerException is TimeoutException)
        {
            throw new DeadlineExceededException($"the HttpClient's timeout of {_http.Timeout.TotalSeconds:0.###} s passed", null, null, e);
        }
    }

    private static void ThrowIfError(HttpResponseMessage response, byte[] body)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw ErrorMapping.FromHttp(response.StatusCode, Encoding.UTF8.GetString(body), response.Headers);
        }
    }

    /// <summary>A GET/POST whose 200 and 503 both answer (health); any other status throws.</summary>
    private Task<(HttpStatusCode Status, byte[] Body)> SendForStatusAsync(
        HttpMethod method, string path, Func<HttpContent>? content, (string, string?)? model, CallSettings? settings, CancellationToken cancellationToken) =>
        SendForBodyAsync(method, path, content, model, settings, unavailableAnswers: true, cancellationToken);

    private async Task<JsonElement> SendJsonAsync(
        HttpMethod method, string path, Func<HttpContent>? content, (string, string?)? model, CallSettings? settings, CancellationToken cancellationToken)
    {
        var (_, bytes) = await SendForBodyAsync(method, path, content, model, settings, unavailableAnswers: false, cancellationToken).ConfigureAwait(false);
        using var document = JsonDocument.Parse(bytes);
        return document.RootElement.Clone();
    }

    /// <summary>One call (with the retry policy): the status and body of a success, or of a 503 when
    /// <paramref name="unavailableAnswers"/> (a health answer, not an error); any other status throws.</summary>
    private Task<(HttpStatusCode Status, byte[] Body)> SendForBodyAsync(
        HttpMethod method, string path, Func<HttpContent>? content, (string, string?)? model, CallSettings? settings, bool unavailableAnswers,
        CancellationToken cancellationToken) =>
        _runner.RunAsync(settings, async (_, token) =>
        {
            using var message = NewRequest(method, path, model, settings);
            message.Content = content?.Invoke();
            using var response = await SendAsync(message, HttpCompletionOption.ResponseContentRead, token).ConfigureAwait(false);
            var bytes = await response.Content.ReadAsByteArrayAsync(token).ConfigureAwait(false);
            if (!(unavailableAnswers && response.StatusCode == HttpStatusCode.ServiceUnavailable))
            {
                ThrowIfError(response, bytes);
            }
            return (response.StatusCode, bytes);
        }, cancellationToken);

    private (byte[] Header, byte[] Binary) BuildInferBody(InferRequest request)
    {
        var mode = _options.HttpEncoding;
        var binary = new MemoryStream();
        var anyBinary = false;
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            if (request.Id is not null)
            {
                w.WriteString("id", request.Id);
            }
            var inputsBinary = request.Inputs.Select(t => mode == HttpTensorEncoding.Binary || t.Datatype == DataType.Bf16
                || mode == HttpTensorEncoding.Auto && t.Datatype != DataType.Bytes && t.ElementCount * DataType.ElementSize(t.Datatype) >= _options.BinaryThresholdBytes
                || t.Datatype == DataType.Bytes && (!JsonTensorCodec.IsValidUtf8(t) || mode == HttpTensorEncoding.Auto && t.ToRawBytes().Length >= _options.BinaryThresholdBytes)).ToArray();
            anyBinary = inputsBinary.Any(b => b);
            var binaryOutputs = mode == HttpTensorEncoding.Binary || mode == HttpTensorEncoding.Auto && anyBinary;
            w.WriteStartObject("parameters");
            foreach (var (key, value) in request.Parameters)
            {
                WriteParameter(w, key, value);
            }
            if (binaryOutputs && !request.Parameters.ContainsKey("binary_data_output"))
            {
                w.WriteBoolean("binary_data_output", true);
            }
            w.WriteEndObject();
            w.WriteStartArray("inputs");
            for (var i = 0; i < request.Inputs.Count; i++)
            {
                var t = request.Inputs[i];
                w.WriteStartObject();
                w.WriteString("name", t.Name);
                w.WriteString("datatype", t.Datatype);
                w.WriteStartArray("shape");
                foreach (var d in t.Shape)
                {
                    w.WriteNumberValue(d);
                }
                w.WriteEndArray();
                if (inputsBinary[i])
                {
                    var raw = t.ToRawBytes();
                    binary.Write(raw);
                    w.WriteStartObject("parameters");
                    w.WriteNumber("binary_data_size", raw.Length);
                    w.WriteEndObject();
                }
                else
                {
                    w.WritePropertyName("data");
                    JsonTensorCodec.WriteData(w, t);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (request.Outputs.Count > 0)
            {
                w.WriteStartArray("outputs");
                foreach (var name in request.Outputs)
                {
                    w.WriteStartObject();
                    w.WriteString("name", name);
                    if (binaryOutputs)
                    {
                        w.WriteStartObject("parameters");
                        w.WriteBoolean("binary_data", true);
                        w.WriteEndObject();
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        return (buffer.ToArray(), anyBinary ? binary.ToArray() : []);
    }

    private static void WriteParameter(Utf8JsonWriter w, string key, object value)
    {
        switch (value)
        {
            case bool b: w.WriteBoolean(key, b); break;
            case string s: w.WriteString(key, s); break;
            case int or long or short or sbyte or byte or ushort or uint: w.WriteNumber(key, Convert.ToInt64(value, CultureInfo.InvariantCulture)); break;
            case ulong u: w.WriteNumber(key, u); break;
            case float or double or decimal: w.WriteNumber(key, Convert.ToDouble(value, CultureInfo.InvariantCulture)); break;
            default: throw new ArgumentException($"parameter '{key}': a {value.GetType().Name} is not a parameter value; use a string, bool, integer or floating point number");
        }
    }

    private static InferResult ParseInferResponse(HttpResponseMessage response, byte[] bytes)
    {
        var headerLength = bytes.Length;
        if (response.Headers.TryGetValues(HeaderLength, out var values) || response.Content.Headers.TryGetValues(HeaderLength, out values))
        {
            headerLength = int.Parse(values.First(), CultureInfo.InvariantCulture);
            if (headerLength < 0 || headerLength > bytes.Length)
            {
                throw new InferenceServerException(
                    $"the server's {HeaderLength} ({headerLength}) is outside the {bytes.Length}-byte response", response.StatusCode, null);
            }
        }
        using var document = JsonDocument.Parse(bytes.AsMemory(0, headerLength));
        var root = document.RootElement;
        var outputs = new List<Tensor>();
        var offset = headerLength;
        if (root.TryGetProperty("outputs", out var list))
        {
            foreach (var o in list.EnumerateArray())
            {
                var name = Str(o, "name");
                var datatype = Str(o, "datatype");
                var shape = o.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                if (o.TryGetProperty("parameters", out var p) && p.TryGetProperty("binary_data_size", out var size))
                {
                    var n = size.GetInt32();
                    if (n < 0 || offset + n > bytes.Length)
                    {
                        throw new InferenceServerException(
                            $"output '{name}' claims {n} bytes of binary data but the response has {bytes.Length - offset} left", response.StatusCode, null);
                    }
                    outputs.Add(Tensor.FromRaw(name, datatype, shape, bytes.AsSpan(offset, n)));
                    offset += n;
                }
                else
                {
                    outputs.Add(JsonTensorCodec.ReadData(name, datatype, shape, o.GetProperty("data")));
                }
            }
        }
        return new InferResult(Str(root, "model_name"), Str(root, "model_version"),
            root.TryGetProperty("id", out var id) ? id.GetString() : null, outputs);
    }

    private static string GenerateBody(GenerateRequest request)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("text_input", request.TextInput);
            if (request.Id is not null)
            {
                w.WriteString("id", request.Id);
            }
            var p = request.Parameters;
            w.WriteStartObject("parameters");
            if (p.MaxTokens is { } maxTokens) { w.WriteNumber("max_tokens", maxTokens); }
            if (p.Temperature is { } temperature) { w.WriteNumber("temperature", temperature); }
            if (p.TopP is { } topP) { w.WriteNumber("top_p", topP); }
            if (p.TopK is { } topK) { w.WriteNumber("top_k", topK); }
            if (p.Seed is { } seed) { w.WriteNumber("seed", seed); }
            if (p.IgnoreEos is { } ignoreEos) { w.WriteBoolean("ignore_eos", ignoreEos); }
            if (p.Stop.Count == 1)
            {
                w.WriteString("stop", p.Stop[0]);
            }
            else if (p.Stop.Count > 1)
            {
                w.WriteStartArray("stop");
                foreach (var s in p.Stop)
                {
                    w.WriteStringValue(s);
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static GenerateChunk ParseChunk(JsonElement json)
    {
        static int? Int(JsonElement json, string property) =>
            json.TryGetProperty(property, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
        return new GenerateChunk(
            Str(json, "model_name"), Str(json, "model_version"), Str(json, "text_output"),
            json.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null,
            Int(json, "prompt_tokens"), Int(json, "completion_tokens"),
            json.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null);
    }
}
