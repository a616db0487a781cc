using System.Buffers.Binary;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Google.Protobuf;
using InferenceServer.Protocol;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>The four ways a client sends tensors.</summary>
public enum TensorEncoding
{
    GrpcRaw,
    GrpcTyped,
    RestJson,
    RestBinary,
}

/// <summary>A small KServe v2 client over each encoding, turning answers back into <see cref="WireTensor"/>s.</summary>
public static class InferClient
{
    public static Task<IReadOnlyList<WireTensor>> InferAsync(
        RunningServer server, TensorEncoding encoding, string model, IReadOnlyList<WireTensor> inputs, string version = "", IReadOnlyList<string>? outputs = null) =>
        encoding switch
        {
            TensorEncoding.GrpcRaw => GrpcAsync(server, model, version, inputs, raw: true, outputs),
            TensorEncoding.GrpcTyped => GrpcAsync(server, model, version, inputs, raw: false, outputs),
            TensorEncoding.RestJson => RestAsync(server, model, version, inputs, binary: false, outputs),
            _ => RestAsync(server, model, version, inputs, binary: true, outputs),
        };

    /// <summary>Whether the protocol can carry <paramref name="datatype"/> in this encoding (FP16 and BF16 have no typed gRPC field; BF16 has no JSON form).</summary>
    public static bool Supports(TensorEncoding encoding, string datatype) => encoding switch
    {
        TensorEncoding.GrpcTyped => datatype is not ("FP16" or "BF16"),
        TensorEncoding.RestJson => datatype != "BF16",
        _ => true,
    };

    public static ModelInferRequest BuildGrpcRequest(string model, string version, IReadOnlyList<WireTensor> inputs, bool raw, IReadOnlyList<string>? outputs = null)
    {
        var request = new ModelInferRequest { ModelName = model, ModelVersion = version, Id = "req-" + model };
        foreach (var input in inputs)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = input.Name, Datatype = input.Datatype };
            tensor.Shape.Add(input.Shape);
            if (raw)
            {
                request.RawInputContents.Add(ByteString.CopyFrom(input.Data));
            }
            else
            {
                tensor.Contents = ToContents(input);
            }
            request.Inputs.Add(tensor);
        }
        foreach (var output in outputs ?? [])
        {
            request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = output });
        }
        return request;
    }

    private static async Task<IReadOnlyList<WireTensor>> GrpcAsync(
        RunningServer server, string model, string version, IReadOnlyList<WireTensor> inputs, bool raw, IReadOnlyList<string>? outputs)
    {
        var response = await server.Grpc.ModelInferAsync(BuildGrpcRequest(model, version, inputs, raw, outputs));
        Assert.Equal("req-" + model, response.Id);
        var result = new List<WireTensor>();
        for (var i = 0; i < response.Outputs.Count; i++)
        {
            var o = response.Outputs[i];
            var data = response.RawOutputContents.Count > 0 ? response.RawOutputContents[i].ToByteArray() : FromContents(o.Datatype, o.Contents);
            if (!raw && o.Datatype is not ("FP16" or "BF16"))
            {
                Assert.Empty(response.RawOutputContents);
            }
            result.Add(new WireTensor(o.Name, o.Datatype, o.Shape.ToArray(), data));
        }
        return result;
    }

    private static InferTensorContents ToContents(WireTensor t)
    {
        var c = new InferTensorContents();
        var span = t.Data.AsSpan();
        switch (t.Datatype)
        {
            case "BOOL": foreach (var b in span) { c.BoolContents.Add(b != 0); } break;
            case "INT8": foreach (var b in span) { c.IntContents.Add((sbyte)b); } break;
            case "INT16": for (var i = 0; i < span.Length; i += 2) { c.IntContents.Add(BinaryPrimitives.ReadInt16LittleEndian(span[i..])); } break;
            case "INT32": for (var i = 0; i < span.Length; i += 4) { c.IntContents.Add(BinaryPrimitives.ReadInt32LittleEndian(span[i..])); } break;
            case "INT64": for (var i = 0; i < span.Length; i += 8) { c.Int64Contents.Add(BinaryPrimitives.ReadInt64LittleEndian(span[i..])); } break;
            case "UINT8": foreach (var b in span) { c.UintContents.Add(b); } break;
            case "UINT16": for (var i = 0; i < span.Length; i += 2) { c.UintContents.Add(BinaryPrimitives.ReadUInt16LittleEndian(span[i..])); } break;
            case "UINT32": for (var i = 0; i < span.Length; i += 4) { c.UintContents.Add(BinaryPrimitives.ReadUInt32LittleEndian(span[i..])); } break;
            case "UINT64": for (var i = 0; i < span.Length; i += 8) { c.Uint64Contents.Add(BinaryPrimitives.ReadUInt64LittleEndian(span[i..])); } break;
            case "FP32": for (var i = 0; i < span.Length; i += 4) { c.Fp32Contents.Add(BinaryPrimitives.ReadSingleLittleEndian(span[i..])); } break;
            case "FP64": for (var i = 0; i < span.Length; i += 8) { c.Fp64Contents.Add(BinaryPrimitives.ReadDoubleLittleEndian(span[i..])); } break;
            case "BYTES": foreach (var e in t.BytesElements()) { c.BytesContents.Add(ByteString.CopyFrom(e)); } break;
            default: throw new InvalidOperationException($"{t.Datatype} has no typed contents");
        }
        return c;
    }

    private static byte[] FromContents(string datatype, InferTensorContents c)
    {
        var stream = new MemoryStream();
        var w = new BinaryWriter(stream);
        switch (datatype)
        {
            case "BOOL": foreach (var v in c.BoolContents) { w.Write(v); } break;
            case "INT8": foreach (var v in c.IntContents) { w.Write((sbyte)v); } break;
            case "INT16": foreach (var v in c.IntContents) { w.Write((short)v); } break;
            case "INT32": foreach (var v in c.IntContents) { w.Write(v); } break;
            case "INT64": foreach (var v in c.Int64Contents) { w.Write(v); } break;
            case "UINT8": foreach (var v in c.UintContents) { w.Write((byte)v); } break;
            case "UINT16": foreach (var v in c.UintContents) { w.Write((ushort)v); } break;
            case "UINT32": foreach (var v in c.UintContents) { w.Write(v); } break;
            case "UINT64": foreach (var v in c.Uint64Contents) { w.Write(v); } break;
            case "FP32": foreach (var v in c.Fp32Contents) { w.Write(v); } break;
            case "FP64": foreach (var v in c.Fp64Contents) { w.Write(v); } break;
            case "BYTES": return WireTensor.EncodeBytes(c.BytesContents.Select(b => b.ToByteArray()));
            default: throw new InvalidOperationException(datatype);
        }
        return stream.ToArray();
    }

    /// <summary>Builds a REST infer body: JSON data, or JSON header + binary data with the header length to send.</summary>
    public static (byte[] Body, int? HeaderLength) BuildRestBody(IReadOnlyList<WireTensor> inputs, bool binary, IReadOnlyList<string>? outputs = null, string id = "")
    {
        var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (id.Length > 0)
            {
                w.WriteString("id", id);
            }
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
                    w.WritePropertyName("data");
                    WriteJsonData(w, input);
                }
                w.WriteEndObject();
            }
            w.WriteEndArray();
            if (outputs is not null || binary)
            {
                w.WriteStartArray("outputs");
                foreach (var output in outputs ?? [])
                {
                    w.WriteStartObject();
                    w.WriteString("name", output);
                    if (binary)
                    {
                        w.WriteStartObject("parameters");
                        w.WriteBoolean("binary_data", true);
                        w.WriteEndObject();
                    }
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                if (binary && outputs is null)
                {
                    w.WriteStartObject("parameters");
                    w.WriteBoolean("binary_data_output", true);
                    w.WriteEndObject();
                }
            }
            w.WriteEndObject();
        }
        if (!binary)
        {
            return (json.ToArray(), null);
        }
        var header = (int)json.Length;
        foreach (var input in inputs)
        {
            json.Write(input.Data);
        }
        return (json.ToArray(), header);
    }

    private static async Task<IReadOnlyList<WireTensor>> RestAsync(
        RunningServer server, string model, string version, IReadOnlyList<WireTensor> inputs, bool binary, IReadOnlyList<string>? outputs)
    {
        var (body, headerLength) = BuildRestBody(inputs, binary, outputs, id: "req-" + model);
        var path = version.Length > 0 ? $"/v2/models/{model}/versions/{version}/infer" : $"/v2/models/{model}/infer";
        using var content = new ByteArrayContent(body);
        if (headerLength is int h)
        {
            content.Headers.Add("Inference-Header-Content-Length", h.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        }
        using var response = await server.Http.PostAsync(path, content);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {System.Text.Encoding.UTF8.GetString(bytes)}");
        return ParseRestResponse(response, bytes, "req-" + model);
    }

    public static IReadOnlyList<WireTensor> ParseRestResponse(HttpResponseMessage response, byte[] bytes, string? expectedId = null)
    {
        var jsonLength = response.Headers.TryGetValues("Inference-Header-Content-Length", out var values)
            ? int.Parse(values.Single(), CultureInfo.InvariantCulture)
            : bytes.Length;
        using var document = JsonDocument.Parse(bytes.AsMemory(0, jsonLength));
        if (expectedId is not null)
        {
            Assert.Equal(expectedId, document.RootElement.GetProperty("id").GetString());
        }
        var offset = jsonLength;
        var result = new List<WireTensor>();
        foreach (var o in document.RootElement.GetProperty("outputs").EnumerateArray())
        {
            var datatype = o.GetProperty("datatype").GetString()!;
            var shape = o.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
            byte[] data;
            if (o.TryGetProperty("parameters", out var p) && p.TryGetProperty("binary_data_size", out var size))
            {
                data = bytes.AsSpan(offset, size.GetInt32()).ToArray();
                offset += data.Length;
            }
            else
            {
                data = ReadJsonData(datatype, o.GetProperty("data"));
            }
            result.Add(new WireTensor(o.GetProperty("name").GetString()!, datatype, shape, data));
        }
        Assert.Equal(bytes.Length, offset);
        return result;
    }

    public static void WriteJsonData(Utf8JsonWriter w, WireTensor t)
    {
        w.WriteStartArray();
        if (t.Datatype == "BYTES")
        {
            foreach (var e in t.BytesElements())
            {
                w.WriteStringValue(System.Text.Encoding.UTF8.GetString(e));
            }
        }
        else
        {
            var span = t.Data.AsSpan();
            var size = WireTensor.ElementSize(t.Datatype);
            for (var i = 0; i < span.Length; i += size)
            {
                var s = span[i..];
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
                    case "FP16": WriteFloat(w, (float)BinaryPrimitives.ReadHalfLittleEndian(s)); break;
                    case "FP32": WriteFloat(w, BinaryPrimitives.ReadSingleLittleEndian(s)); break;
                    case "FP64": WriteFloat(w, BinaryPrimitives.ReadDoubleLittleEndian(s)); break;
                    default: throw new InvalidOperationException($"{t.Datatype} has no JSON form");
                }
            }
        }
        w.WriteEndArray();
    }

    private static void WriteFloat(Utf8JsonWriter w, float v)
    {
        if (float.IsFinite(v)) { w.WriteNumberValue(v); } else { w.WriteStringValue(float.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity"); }
    }

    private static void WriteFloat(Utf8JsonWriter w, double v)
    {
        if (double.IsFinite(v)) { w.WriteNumberValue(v); } else { w.WriteStringValue(double.IsNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity"); }
    }

    public static byte[] ReadJsonData(string datatype, JsonElement data)
    {
        var stream = new MemoryStream();
        var w = new BinaryWriter(stream);
        var strings = new List<byte[]>();
        foreach (var e in Flatten(data))
        {
            switch (datatype)
            {
                case "BOOL": w.Write(e.GetBoolean()); break;
                case "INT8": w.Write(e.GetSByte()); break;
                case "INT16": w.Write(e.GetInt16()); break;
                case "INT32": w.Write(e.GetInt32()); break;
                case "INT64": w.Write(e.GetInt64()); break;
                case "UINT8": w.Write(e.GetByte()); break;
                case "UINT16": w.Write(e.GetUInt16()); break;
                case "UINT32": w.Write(e.GetUInt32()); break;
                case "UINT64": w.Write(e.GetUInt64()); break;
                case "FP16": w.Write((Half)ReadFloat(e)); break;
                case "FP32": w.Write((float)ReadFloat(e)); break;
                case "FP64": w.Write(ReadFloat(e)); break;
                case "BYTES": strings.Add(System.Text.Encoding.UTF8.GetBytes(e.GetString()!)); break;
                default: throw new InvalidOperationException(datatype);
            }
        }
        return datatype == "BYTES" ? WireTensor.EncodeBytes(strings) : stream.ToArray();
    }

    private static double ReadFloat(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? e.GetString() switch { "NaN" => double.NaN, "Infinity" => double.PositiveInfinity, _ => double.NegativeInfinity }
        : e.GetDouble();

    private static IEnumerable<JsonElement> Flatten(JsonElement e) =>
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().SelectMany(Flatten) : [e];
}
