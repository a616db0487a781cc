using System.Buffers.Binary;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Google.Protobuf;
using InferenceServer.Protocol;

namespace InferenceServer.Perf;

/// <summary>One input tensor as sent on the wire: little-endian, row-major bytes (BYTES: 4-byte length + bytes per element).</summary>
internal sealed record InputTensor(string Name, string Datatype, long[] Shape, byte[] Data)
{
    public long ElementCount => Shape.Aggregate(1L, (a, d) => a * d);

    public override string ToString() => $"{Name} {Datatype} [{string.Join(",", Shape)}]";

    /// <summary>Deterministic inputs from the model's metadata: its datatypes and shapes, with every -1 taken as 1.</summary>
    public static IReadOnlyList<InputTensor> FromMetadata(ModelMetadataResponse metadata)
    {
        var random = new Random(20240601);
        return metadata.Inputs.Select(input =>
        {
            var shape = input.Shape.Select(d => d < 0 ? 1 : d).ToArray();
            var count = (int)shape.Aggregate(1L, (a, d) => a * d);
            return new InputTensor(input.Name, input.Datatype, shape, Generate(input.Datatype, count, random));
        }).ToArray();
    }

    /// <summary>A deterministic tensor of the given datatype and shape (e.g. a payload of a chosen size).</summary>
    public static InputTensor Create(string name, string datatype, long[] shape, int seed = 20240601)
    {
        var count = (int)shape.Aggregate(1L, (a, d) => a * d);
        return new InputTensor(name, datatype, shape, Generate(datatype, count, new Random(seed)));
    }

    /// <summary>This tensor (of batch 1 along dimension 0) repeated to <paramref name="batch"/> rows.</summary>
    public InputTensor WithBatch(int batch)
    {
        var shape = (long[])Shape.Clone();
        shape[0] = batch * Shape[0];
        var data = new byte[Data.Length * batch];
        for (var i = 0; i < batch; i++)
        {
            Data.CopyTo(data, i * Data.Length);
        }
        return this with { Shape = shape, Data = data };
    }

    private static byte[] Generate(string datatype, int count, Random random)
    {
        if (datatype == "BYTES")
        {
            var element = "perf"u8.ToArray();
            var stride = 4 + element.Length;
            var bytes = new byte[count * stride];
            for (var i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(i * stride), element.Length);
                element.CopyTo(bytes, i * stride + 4);
            }
            return bytes;
        }
        var size = ElementSize(datatype);
        var data = new byte[count * size];
        for (var i = 0; i < count; i++)
        {
            var s = data.AsSpan(i * size);
            var small = random.Next(0, 100);
            var unit = random.NextSingle();
            switch (datatype)
            {
                case "BOOL": s[0] = (byte)(small & 1); break;
                case "INT8" or "UINT8": s[0] = (byte)small; break;
                case "INT16" or "UINT16": BinaryPrimitives.WriteInt16LittleEndian(s, (short)small); break;
                case "INT32" or "UINT32": BinaryPrimitives.WriteInt32LittleEndian(s, small); break;
                case "INT64" or "UINT64": BinaryPrimitives.WriteInt64LittleEndian(s, small); break;
                case "FP16": BinaryPrimitives.WriteHalfLittleEndian(s, (Half)unit); break;
                case "BF16": BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)(BitConverter.SingleToUInt32Bits(unit) >> 16)); break;
                case "FP32": BinaryPrimitives.WriteSingleLittleEndian(s, unit); break;
                case "FP64": BinaryPrimitives.WriteDoubleLittleEndian(s, unit); break;
                default: throw new NotSupportedException($"datatype {datatype} is not supported");
            }
        }
        return data;
    }

    public static int ElementSize(string datatype) => datatype switch
    {
        "BOOL" or "INT8" or "UINT8" => 1,
        "INT16" or "UINT16" or "FP16" or "BF16" => 2,
        "INT32" or "UINT32" or "FP32" => 4,
        "INT64" or "UINT64" or "FP64" => 8,
        _ => throw new NotSupportedException($"datatype {datatype} is not supported"),
    };
}

/// <summary>A closed-loop load of one prepared inference request: <c>concurrency</c> calls in flight until the window ends.</summary>
internal interface ILoadClient
{
    string Protocol { get; }

    Task<Measurement> RunClosedAsync(int concurrency, TimeSpan duration, long maxRequests);
}

/// <summary>A client sending one prepared inference request per call; it throws on any failure. Its closed loop is <see cref="LoadLoop"/>'s.</summary>
internal interface IInferClient : ILoadClient
{
    Task InferAsync(CancellationToken cancellationToken);

    Task<Measurement> ILoadClient.RunClosedAsync(int concurrency, TimeSpan duration, long maxRequests) =>
        LoadLoop.RunAsync(concurrency, duration, maxRequests, InferAsync);
}

/// <summary>A gRPC client's request as one framed gRPC message (compression flag 0, big-endian length, message): h2load's body file.</summary>
internal interface IGrpcRequest
{
    byte[] FramedRequest();
}

/// <summary>REST infer, with the tensors as JSON arrays or with Triton's binary tensor data extension (binary outputs too).</summary>
internal sealed class RestInferClient : IInferClient
{
    private readonly HttpClient _http;
    private readonly string _path;
    private readonly byte[] _body;
    private readonly int? _headerLength;

    public RestInferClient(HttpClient http, string model, IReadOnlyList<InputTensor> inputs, bool binary)
    {
        _http = http;
        _path = $"v2/models/{Uri.EscapeDataString(model)}/infer";
        (_body, _headerLength) = BuildBody(inputs, binary);
        Protocol = binary ? "rest-binary" : "rest-json";
    }

    public string Protocol { get; }

    public async Task InferAsync(CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(_body);
        if (_headerLength is int length)
        {
            content.Headers.Add("Inference-Header-Content-Length", length.ToString(CultureInfo.InvariantCulture));
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        }
        else
        {
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }
        using var response = await _http.PostAsync(_path, content, cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"{(int)response.StatusCode}: {Encoding.UTF8.GetString(body.AsSpan(0, Math.Min(body.Length, 300)))}", null, response.StatusCode);
        }
        if (body.Length == 0)
        {
            throw new InvalidOperationException("the response body is empty");
        }
    }

    /// <summary>The request body: JSON with the data inline, or a JSON header followed by the raw tensors.</summary>
    private static (byte[] Body, int? HeaderLength) BuildBody(IReadOnlyList<InputTensor> inputs, bool binary)
    {
        var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            w.WriteStartArray("inputs");
            foreach (var input in inputs)
            {
                w.WriteStartObject();
                w.WriteString("name", input.Name);
                w.WriteString("datatype", input.Datatype);
                w.WriteStartArray("shape");
                foreach (var d in input.Shape)
                {
                    w.WriteNumberValue(d);
                }
                w.WriteEndArray();
                if (binary)
                {
                    w.WriteStartObject("parameters");
                    w.WriteNumber("binary_data_size", input.Data.Length);
                    w.WriteEndObject();
                }
                else
                {
                    WriteJsonData(w, input);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (binary)
            {
                w.WriteStartObject("parameters");
                w.WriteBoolean("binary_data_output", true);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        if (!binary)
        {
            return (stream.ToArray(), null);
        }
        var header = (int)stream.Length;
        foreach (var input in inputs)
        {
            stream.Write(input.Data);
        }
        return (stream.ToArray(), header);
    }

    private static void WriteJsonData(Utf8JsonWriter w, InputTensor t)
    {
        w.WriteStartArray("data");
        ReadOnlySpan<byte> data = t.Data;
        if (t.Datatype == "BYTES")
        {
            while (!data.IsEmpty)
            {
                var length = BinaryPrimitives.ReadInt32LittleEndian(data);
                w.WriteStringValue(Encoding.UTF8.GetString(data.Slice(4, length)));
                data = data[(4 + length)..];
            }
        }
        else
        {
            var size = InputTensor.ElementSize(t.Datatype);
            for (var i = 0; i < data.Length; i += size)
            {
                var s = data[i..];
                switch (t.Datatype)
                {
                    case "BOOL": w.WriteBooleanValue(s[0] != 0); break;
                    case "UINT8": w.WriteNumberValue(s[0]); break;
                    case "INT8": w.WriteNumberValue((sbyte)s[0]); break;
                    case "UINT16": w.WriteNumberValue(BinaryPrimitives.ReadUInt16LittleEndian(s)); break;
                    case "INT16": w.WriteNumberValue(BinaryPrimitives.ReadInt16LittleEndian(s)); break;
                    case "UINT32": w.WriteNumberValue(BinaryPrimitives.ReadUInt32LittleEndian(s)); break;
                    case "INT32": w.WriteNumberValue(BinaryPrimitives.ReadInt32LittleEndian(s)); break;
                    case "UINT64": w.WriteNumberValue(BinaryPrimitives.ReadUInt64LittleEndian(s)); break;
                    case "INT64": w.WriteNumberValue(BinaryPrimitives.ReadInt64LittleEndian(s)); break;
                    case "FP16": w.WriteNumberValue((float)BinaryPrimitives.ReadHalfLittleEndian(s)); break;
                    case "FP32": w.WriteNumberValue(BinaryPrimitives.ReadSingleLittleEndian(s)); break;
                    case "FP64": w.WriteNumberValue(BinaryPrimitives.ReadDoubleLittleEndian(s)); break;
                    default: throw new NotSupportedException($"{t.Datatype} has no JSON form; use grpc or rest-binary");
                }
            }
        }
        w.WriteEndArray();
    }
}
