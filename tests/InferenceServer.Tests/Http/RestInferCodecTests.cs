using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using InferenceServer.Http;
using InferenceServer.Inference;
using InferenceServer.Tensors;
using Microsoft.AspNetCore.Http;

namespace InferenceServer.Tests.Http;

/// <summary>
/// <see cref="RestInferCodec"/> called directly (no socket): the JSON infer body and Triton's binary tensor data
/// extension in, the response body out, and every malformed body refused as INVALID_ARGUMENT naming what is wrong.
/// </summary>
public sealed class RestInferCodecTests
{
    private static byte[] Le<T>(params T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static byte[] Prefixed(params string[] elements)
    {
        var stream = new MemoryStream();
        foreach (var e in elements)
        {
            var bytes = Encoding.UTF8.GetBytes(e);
            var prefix = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(prefix, (uint)bytes.Length);
            stream.Write(prefix);
            stream.Write(bytes);
        }
        return stream.ToArray();
    }

    /// <summary>A body of <paramref name="json"/> followed by <paramref name="binary"/>, and the header length that splits them.</summary>
    private static (byte[] Body, string HeaderLength) Binary(string json, params byte[][] binary)
    {
        var head = Encoding.UTF8.GetBytes(json);
        return ([.. head, .. binary.SelectMany(b => b)], head.Length.ToString(CultureInfo.InvariantCulture));
    }

    private static InferenceRequest Read(string json, RestOutputEncoding? encoding = null) =>
        RestInferCodec.ReadRequest("m", "", Encoding.UTF8.GetBytes(json), null, encoding ?? new RestOutputEncoding());

    private static string Invalid(byte[] body, string? headerLength = null, RequestLimits? limits = null)
    {
        var e = Assert.Throws<InferenceException>(() => RestInferCodec.ReadRequest("m", "1", body, headerLength, new RestOutputEncoding(), limits));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        return e.Message;
    }

    private static string Invalid(string json, RequestLimits? limits = null) => Invalid(Encoding.UTF8.GetBytes(json), null, limits);

    private static string OneInput(string datatype, string shape, string data, string name = "x") =>
        $$"""{"inputs":[{"name":"{{name}}","datatype":"{{datatype}}","shape":{{shape}},"data":{{data}}}]}""";

    // ---- JSON data, every datatype that has a JSON form ----

    public static TheoryData<string, string, string, byte[]> JsonCases { get; } = new()
    {
        { "BOOL", "[3]", "[true,false,true]", [1, 0, 1] },
        { "INT8", "[2]", "[-128,127]", Le<sbyte>(-128, 127) },
        { "UINT8", "[2]", "[0,255]", [0, 255] },
        { "INT16", "[2]", "[-32768,32767]", Le<short>(-32768, 32767) },
        { "UINT16", "[1]", "[65535]", Le<ushort>(65535) },
        { "INT32", "[2,2]", "[[1,2],[-3,2147483647]]", Le(1, 2, -3, int.MaxValue) },
        { "UINT32", "[1]", "[4294967295]", Le(uint.MaxValue) },
        { "INT64", "[2]", "[-9223372036854775808,9223372036854775807]", Le(long.MinValue, long.MaxValue) },
        { "UINT64", "[1]", "[18446744073709551615]", Le(ulong.MaxValue) },
        { "FP16", "[4]", "[1.5,65504,\"-inf\",-0.0]", Le((Half)1.5, Half.MaxValue, Half.NegativeInfinity, (Half)(-0.0)) },
        { "FP32", "[5]", "[0.5,\"NaN\",\"Infinity\",-0.0,3.4028234663852886e38]", Le(0.5f, float.NaN, float.PositiveInfinity, -0f, float.MaxValue) },
        { "FP64", "[3]", "[1e308,\"-Infinity\",5e-324]", Le(1e308, double.NegativeInfinity, double.Epsilon) },
        { "BYTES", "[4]", "[\"\",\"héllo\",\"a\\\"b\\\\n\",\"\\u00e9\"]", Prefixed("", "héllo", "a\"b\\n", "é") },
        { "fp32", "[]", "7", Le(7f) }, // a lower-case datatype; a scalar shape with scalar data
        { "INT32", "[0,3]", "[]", [] },
    };

    [Theory]
    [MemberData(nameof(JsonCases))]
    public void Json_data_decodes_to_the_little_endian_elements(string datatype, string shape, string data, byte[] expected)
    {
        using var request = Read(OneInput(datatype, shape, data));
        var input = Assert.Single(request.Inputs);
        Assert.True(DataTypes.TryParse(datatype, out var type));
        Assert.Equal(type, input.DataType);
        Assert.Equal(JsonSerializer.Deserialize<long[]>(shape), input.Shape);
        Assert.Equal(expected, input.Data.Span.ToArray());
    }

    [Fact]
    public void The_request_id_parameters_and_model_are_kept()
    {
        using var request = RestInferCodec.ReadRequest(
            "simple", "3",
            Encoding.UTF8.GetBytes("""{"id":"r-7","parameters":{"s":"v","b":false,"i":-4,"d":0.5},"inputs":[]}"""),
            null, new RestOutputEncoding());
        Assert.Equal(("simple", "3", "r-7"), (request.ModelName, request.ModelVersion, request.Id));
        Assert.Equal("v", request.Parameters["s"]);
        Assert.Equal(false, request.Parameters["b"]);
        Assert.Equal(-4L, request.Parameters["i"]);
        Assert.Equal(0.5, request.Parameters["d"]);
        Assert.Empty(request.Inputs);
    }

    // ---- the binary tensor data extension ----

    [Fact]
    public void Binary_inputs_are_sliced_in_input_order_between_json_inputs()
    {
        var half = Le((Half)1, (Half)(-2), Half.NaN);
        var bf16 = Le<ushort>(0x3F80, 0x7F80); // 1.0, +inf
        var strings = Prefixed("ab", "");
        var (body, length) = Binary(
            """
            {"inputs":[
              {"name":"h","datatype":"FP16","shape":[3],"parameters":{"binary_data_size":6}},
              {"name":"j","datatype":"INT32","shape":[1],"data":[9]},
              {"name":"e","datatype":"FP32","shape":[0],"parameters":{"binary_data_size":0}},
              {"name":"b","datatype":"BF16","shape":[1,2],"parameters":{"binary_data_size":4}},
              {"name":"s","datatype":"BYTES","shape":[2],"parameters":{"binary_data_size":10}}]}
            """,
            half, bf16, strings);

        using var request = RestInferCodec.ReadRequest("m", "", body, length, new RestOutputEncoding());
        Assert.Equal(["h", "j", "e", "b", "s"], request.Inputs.Select(i => i.Name));
        Assert.Equal(half, request.Inputs[0].Data.Span.ToArray());
        Assert.Equal(Le(9), request.Inputs[1].Data.Span.ToArray());
        Assert.Equal(0, request.Inputs[2].Data.Length);
        Assert.Equal(bf16, request.Inputs[3].Data.Span.ToArray());
        Assert.Equal(DataType.Bf16, request.Inputs[3].DataType);
        Assert.Equal(strings, request.Inputs[4].Data.Span.ToArray());
    }

    [Fact]
    public void A_header_length_equal_to_the_body_means_json_only()
    {
        var json = Encoding.UTF8.GetBytes(OneInput("INT32", "[1]", "[5]"));
        using var request = RestInferCodec.ReadRequest("m", "", json, json.Length.ToString(CultureInfo.InvariantCulture), new RestOutputEncoding());
        Assert.Equal(Le(5), Assert.Single(request.Inputs).Data.Span.ToArray());
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("-1")]
    [InlineData("+5")]
    [InlineData(" 5")]
    [InlineData("5.0")]
    [InlineData("")]
    [InlineData("99999999999")] // past int
    [InlineData("1000")] // past the body
    public void A_header_length_that_is_not_a_length_within_the_body_is_refused(string headerLength)
    {
        var (body, _) = Binary(OneInput("INT32", "[1]", "[5]"), [1, 2, 3, 4]);
        Assert.Equal(
            $"Inference-Header-Content-Length '{headerLength}' is not a length within the {body.Length}-byte body",
            Invalid(body, headerLength));
    }

    [Fact]
    public void A_header_length_of_zero_leaves_an_empty_json_header()
    {
        var (body, _) = Binary(OneInput("INT32", "[1]", "[5]"));
        Assert.Equal("the request body is empty; expected a JSON object with \"inputs\"", Invalid(body, "0"));
        Assert.Equal("the request body is empty; expected a JSON object with \"inputs\"", Invalid([], null));
    }

    [Fact]
    public void A_header_length_that_cuts_the_json_short_is_malformed_json()
    {
        // A JsonException, not an InferenceException: RestErrorMiddleware answers it 400 "malformed JSON: ...".
        var (body, length) = Binary(OneInput("INT32", "[1]", "[5]"));
        Assert.ThrowsAny<JsonException>(() => RestInferCodec.ReadRequest("m", "", body, (int.Parse(length, CultureInfo.InvariantCulture) - 3).ToString(CultureInfo.InvariantCulture), new RestOutputEncoding()));
    }

    [Fact]
    public void Binary_data_without_the_header_length_is_not_json()
    {
        var (body, _) = Binary(OneInput("INT32", "[1]", "[5]"), [1, 2, 3, 4]);
        Assert.ThrowsAny<JsonException>(() => RestInferCodec.ReadRequest("m", "", body, null, new RestOutputEncoding()));
    }

    [Fact]
    public void Binary_data_no_input_claims_is_refused_with_its_size()
    {
        var (body, length) = Binary("""{"inputs":[{"name":"x","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}}]}""", [1, 2, 3, 4, 5]);
        Assert.Equal("the body has 3 bytes of binary data that no input's binary_data_size claims", Invalid(body, length));
    }

    [Fact]
    public void A_binary_data_size_past_the_data_left_is_refused_naming_the_input()
    {
        var (body, length) = Binary(
            """{"inputs":[{"name":"a","datatype":"UINT8","shape":[2],"parameters":{"binary_data_size":2}},{"name":"b","datatype":"UINT8","shape":[4],"parameters":{"binary_data_size":4}}]}""",
            [1, 2, 3, 4, 5]);
        Assert.Equal("input 'b': binary_data_size 4 exceeds the 3 bytes of binary data left in the body", Invalid(body, length));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("\"4\"")]
    [InlineData("1.5")]
    [InlineData("null")]
    public void A_binary_data_size_that_is_not_a_non_negative_integer_is_refused(string size)
    {
        var (body, length) = Binary("""{"inputs":[{"name":"a","datatype":"UINT8","shape":[1],"parameters":{"binary_data_size":""" + size + "}}]}", [1]);
        Assert.Equal("input 'a': binary_data_size must be a non-negative integer", Invalid(body, length));
    }

    [Fact]
    public void Both_data_and_binary_data_size_are_refused()
    {
        var (body, length) = Binary("""{"inputs":[{"name":"a","datatype":"UINT8","shape":[1],"data":[1],"parameters":{"binary_data_size":1}}]}""", [1]);
        Assert.Equal("input 'a' has both \"data\" and binary_data_size", Invalid(body, length));
    }

    [Fact]
    public void Bf16_has_no_json_form()
    {
        Assert.Equal(
            "input 'b': BF16 has no JSON representation; send it as binary data (binary_data_size)",
            Invalid(OneInput("BF16", "[1]", "[1.0]", name: "b")));
    }

    // ---- malformed JSON bodies ----

    [Theory]
    [InlineData("[]", "the request body must be a JSON object")]
    [InlineData("\"x\"", "the request body must be a JSON object")]
    [InlineData("{}", "the request needs an \"inputs\" array")]
    [InlineData("""{"inputs":{}}""", "the request needs an \"inputs\" array")]
    [InlineData("""{"inputs":[1]}""", "each input must be a JSON object")]
    [InlineData("""{"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]}""", "an input has no \"name\"")]
    [InlineData("""{"inputs":[{"name":7,"datatype":"FP32","shape":[1],"data":[1]}]}""", "an input has no \"name\"")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"data":[1]}]}""", "input 'x' has a missing or unknown \"datatype\"")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FLOAT","shape":[1],"data":[1]}]}""", "input 'x' has a missing or unknown \"datatype\"")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"TYPE_FP32","shape":[1],"data":[1]}]}""", "input 'x' has a missing or unknown \"datatype\"")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}""", "input 'x' needs a \"shape\" array")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":1,"data":[1]}]}""", "input 'x' needs a \"shape\" array")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]}""", "input 'x': shape must hold non-negative integers")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1.5],"data":[1]}]}""", "input 'x': shape must hold non-negative integers")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":["2"],"data":[1,2]}]}""", "input 'x': shape must hold non-negative integers")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[1]}]}""", "input 'x' has neither \"data\" nor binary_data_size")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2,3]}]}""", "input 'x' has 3 elements in \"data\" but shape [2,2] needs 4")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[[1],[2,3]]}]}""", "input 'x' has 3 elements in \"data\" but shape [2] needs 2")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"FP32","shape":[0],"data":[]},{"name":"x","datatype":"FP32","shape":[0],"data":[]}]}""", "input 'x' is given more than once")]
    [InlineData("""{"id":5,"inputs":[]}""", "\"id\" must be a string")]
    [InlineData("""{"parameters":[],"inputs":[]}""", "request \"parameters\" must be a JSON object")]
    [InlineData("""{"parameters":{"p":[1]},"inputs":[]}""", "request parameter 'p' must be a string, number or boolean")]
    [InlineData("""{"parameters":{"p":null},"inputs":[]}""", "request parameter 'p' must be a string, number or boolean")]
    [InlineData("""{"inputs":[],"outputs":{}}""", "\"outputs\" must be an array")]
    [InlineData("""{"inputs":[],"outputs":[{"name":1}]}""", "each requested output needs a \"name\"")]
    [InlineData("""{"inputs":[],"outputs":["y"]}""", "each requested output needs a \"name\"")]
    [InlineData("""{"inputs":[],"outputs":[{"name":"y"},{"name":"y"}]}""", "output 'y' is requested more than once")]
    [InlineData("""{"inputs":[],"outputs":[{"name":"y","parameters":{"classification":2}}]}""", "output 'y': the classification extension is not supported")]
    [InlineData("""{"inputs":[],"outputs":[{"name":"y","parameters":{"binary_data":"yes"}}]}""", "output 'y': binary_data must be true or false")]
    public void A_malformed_body_is_refused_saying_what_is_wrong(string json, string expected)
    {
        Assert.Equal(expected, Invalid(json));
    }

    [Theory]
    [InlineData("INT32", "[1,1.5]", "element 1 (1.5) is not a valid INT32 value")]
    [InlineData("INT32", "[2147483648,0]", "element 0 (2147483648) is not a valid INT32 value")]
    [InlineData("UINT8", "[256,0]", "element 0 (256) is not a valid UINT8 value")]
    [InlineData("UINT64", "[-1,0]", "element 0 (-1) is not a valid UINT64 value")]
    [InlineData("INT8", "[0,-129]", "element 1 (-129) is not a valid INT8 value")]
    [InlineData("BOOL", "[1,true]", "element 0 (1) is not a valid BOOL value")]
    [InlineData("FP32", "[1,\"fast\"]", "element 1 (\"fast\") is not a valid FP32 value")]
    [InlineData("FP64", "[null,1]", "element 0 (null) is not a valid FP64 value")]
    [InlineData("FP16", "[1,{}]", "element 1 ({}) is not a valid FP16 value")]
    [InlineData("BYTES", "[\"a\",5]", "element 1 (5) is not a valid BYTES value")]
    [InlineData("FP32", "[1,\"0123456789012345678901234567890123456789xyz\"]", "element 1 (\"012345678901234567890123456789012345678...) is not a valid FP32 value")]
    public void An_element_that_is_not_a_value_of_the_datatype_is_refused_with_its_position(string datatype, string data, string expected)
    {
        Assert.Equal("input 'x': " + expected, Invalid(OneInput(datatype, "[2]", data)));
    }

    [Fact]
    public void A_json_header_that_is_not_utf8_is_refused()
    {
        byte[] body = [.. "{\"inputs\":[],\"id\":\""u8, 0xC3, 0x28, .. "\"}"u8];
        Assert.Equal("the JSON body is not valid UTF-8", Invalid(body));
    }

    [Fact]
    public void Json_nested_deeper_than_the_limit_is_refused_naming_the_limit()
    {
        var deep = """{"inputs":[],"parameters":{"p":""" + new string('[', 40) + new string(']', 40) + "}}";
        Assert.Equal("the JSON body nests deeper than 32 levels (Limits:MaxJsonDepth)", Invalid(deep));
        Assert.Equal(
            "the JSON body nests deeper than 3 levels (Limits:MaxJsonDepth)",
            Invalid(OneInput("FP32", "[2,1]", "[[1],[2]]"), new RequestLimits { MaxJsonDepth = 3 }));
    }

    [Fact]
    public void A_shape_over_the_limits_is_refused_before_its_data_is_counted()
    {
        // The data is empty: had it been counted first, the error would be about the element count.
        Assert.Equal(
            "input 'x' has shape [1099511627776,16] of 17592186044416 elements, over the limit of 67108864 (Limits:MaxTensorElements)",
            Invalid(OneInput("FP32", "[1099511627776,16]", "[]")));
        var (body, length) = Binary(
            """{"inputs":[{"name":"a","datatype":"UINT8","shape":[4],"parameters":{"binary_data_size":4}},{"name":"b","datatype":"UINT8","shape":[4],"parameters":{"binary_data_size":4}}]}""",
            new byte[8]);
        Assert.StartsWith("input 'b' has shape [4] of UINT8: the request's tensor data would exceed the limit of 6 bytes", Invalid(body, length, new RequestLimits { MaxRequestTensorBytes = 6 }));
    }

    // ---- which outputs go back as binary ----

    [Fact]
    public void Binary_data_output_and_per_output_binary_data_set_the_output_encoding()
    {
        var encoding = new RestOutputEncoding();
        using (Read("""{"parameters":{"binary_data_output":true},"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":false}},{"name":"b"}]}""", encoding))
        {
        }
        Assert.True(encoding.BinaryByDefault);
        Assert.False(encoding.IsBinary(Empty("a", DataType.Fp32)));
        Assert.True(encoding.IsBinary(Empty("b", DataType.Fp32)));
        Assert.True(encoding.IsBinary(Empty("other", DataType.Fp32)));

        var json = new RestOutputEncoding();
        using (Read("""{"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":true}}]}""", json))
        {
        }
        Assert.False(json.BinaryByDefault);
        Assert.True(json.IsBinary(Empty("a", DataType.Fp32)));
        Assert.False(json.IsBinary(Empty("b", DataType.Fp32)));
    }

    [Fact]
    public void Bf16_outputs_are_always_binary()
    {
        var encoding = new RestOutputEncoding();
        encoding.PerOutput["b"] = false;
        Assert.True(encoding.IsBinary(Empty("b", DataType.Bf16)));
    }

    private static Tensor Empty(string name, DataType type) => new(name, type, [0], TensorBuffer.Rent(0));

    // ---- the response ----

    private static async Task<(HttpResponse Response, byte[] Body)> WriteAsync(InferenceResponse response, RestOutputEncoding encoding)
    {
        var context = new DefaultHttpContext();
        var stream = new MemoryStream();
        context.Response.Body = stream;
        await RestInferCodec.WriteResponseAsync(context.Response, response, encoding, CancellationToken.None);
        return (context.Response, stream.ToArray());
    }

    [Fact]
    public async Task A_json_response_carries_every_datatype_as_json_values()
    {
        using var response = new InferenceResponse("m", "1", "r-1");
        response.Outputs.Add(new Tensor("f", DataType.Fp32, [2, 2], TensorBuffer.CopyOf(Le(0.5f, float.NaN, float.NegativeInfinity, -0f))));
        response.Outputs.Add(new Tensor("h", DataType.Fp16, [1], TensorBuffer.CopyOf(Le((Half)1.5))));
        response.Outputs.Add(new Tensor("u", DataType.UInt64, [1], TensorBuffer.CopyOf(Le(ulong.MaxValue))));
        response.Outputs.Add(new Tensor("s", DataType.Bytes, [2], TensorBuffer.CopyOf(Prefixed("héllo", "it's"))));
        response.Outputs.Add(new Tensor("b", DataType.Bool, [2], TensorBuffer.CopyOf([1, 0])));

        var (http, body) = await WriteAsync(response, new RestOutputEncoding());
        Assert.Equal(200, http.StatusCode);
        Assert.Equal("application/json", http.ContentType);
        Assert.False(http.Headers.ContainsKey(RestInferCodec.HeaderLengthHeader));
        Assert.Equal(body.Length, http.ContentLength);
        Assert.Equal(
            """{"model_name":"m","model_version":"1","id":"r-1","outputs":[""" +
            """{"name":"f","datatype":"FP32","shape":[2,2],"data":[0.5,"NaN","-Infinity",-0]},""" +
            """{"name":"h","datatype":"FP16","shape":[1],"data":[1.5]},""" +
            """{"name":"u","datatype":"UINT64","shape":[1],"data":[18446744073709551615]},""" +
            """{"name":"s","datatype":"BYTES","shape":[2],"data":["héllo","it's"]},""" +
            """{"name":"b","datatype":"BOOL","shape":[2],"data":[true,false]}]}""",
            Encoding.UTF8.GetString(body));
    }

    [Fact]
    public async Task Binary_outputs_follow_the_json_header_in_output_order_with_their_sizes()
    {
        using var response = new InferenceResponse("m", "1", "");
        var bf16 = Le<ushort>(0x3F80);
        var ints = Le(1, 2, 3);
        var strings = Prefixed("a");
        response.Outputs.Add(new Tensor("bf", DataType.Bf16, [1], TensorBuffer.CopyOf(bf16))); // binary though not asked
        response.Outputs.Add(new Tensor("j", DataType.Int32, [3], TensorBuffer.CopyOf(ints)));
        response.Outputs.Add(new Tensor("i", DataType.Int32, [3], TensorBuffer.CopyOf(ints)));
        response.Outputs.Add(new Tensor("s", DataType.Bytes, [1], TensorBuffer.CopyOf(strings)));
        var encoding = new RestOutputEncoding();
        encoding.PerOutput["i"] = true;
        encoding.PerOutput["s"] = true;

        var (http, body) = await WriteAsync(response, encoding);
        Assert.Equal("application/octet-stream", http.ContentType);
        var headerLength = int.Parse(http.Headers[RestInferCodec.HeaderLengthHeader].ToString(), CultureInfo.InvariantCulture);
        Assert.Equal(body.Length, http.ContentLength);
        Assert.Equal(headerLength + bf16.Length + ints.Length + strings.Length, body.Length);

        using var header = JsonDocument.Parse(body.AsMemory(0, headerLength));
        var outputs = header.RootElement.GetProperty("outputs").EnumerateArray().ToArray();
        Assert.Equal(2, outputs[0].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.False(outputs[0].TryGetProperty("data", out _));
        Assert.Equal([1, 2, 3], outputs[1].GetProperty("data").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(12, outputs[2].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.Equal(5, outputs[3].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        Assert.Equal([.. bf16, .. ints, .. strings], body[headerLength..]);
    }

    [Fact]
    public async Task An_empty_binary_output_still_makes_a_binary_response()
    {
        using var response = new InferenceResponse("m", "1", "");
        response.Outputs.Add(new Tensor("e", DataType.Fp32, [0], TensorBuffer.Rent(0)));
        var (http, body) = await WriteAsync(response, new RestOutputEncoding { BinaryByDefault = true });
        Assert.Equal("application/octet-stream", http.ContentType);
        Assert.Equal(body.Length.ToString(CultureInfo.InvariantCulture), http.Headers[RestInferCodec.HeaderLengthHeader].ToString());
        Assert.Contains("\"binary_data_size\":0", Encoding.UTF8.GetString(body));
    }

    [Fact]
    public async Task A_response_served_by_a_fallback_says_so_in_a_header_and_its_parameters()
    {
        using var response = new InferenceResponse("small", "2", "") { FallbackFor = "big" };
        var (http, body) = await WriteAsync(response, new RestOutputEncoding());
        Assert.Equal("small/2", http.Headers[Protocol.RequestMetadata.ServedByModelHeader].ToString());
        using var json = JsonDocument.Parse(body);
        Assert.False(json.RootElement.TryGetProperty("id", out _));
        var parameters = json.RootElement.GetProperty("parameters");
        Assert.Equal("small/2", parameters.GetProperty("served_by_model").GetString());
        Assert.Equal("big", parameters.GetProperty("fallback_for").GetString());
    }
}
