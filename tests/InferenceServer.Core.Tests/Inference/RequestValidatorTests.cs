using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tensors;

namespace InferenceServer.Tests.Core.Inference;

/// <summary>
/// <see cref="RequestValidator"/> (a decoded request against the model's configuration) and <see cref="RequestLimits"/>
/// (a declared shape against the configured limits), called directly.
/// </summary>
public sealed class RequestValidatorTests
{
    /// <summary>Like Triton's "simple": two INT32 inputs [-1,16], batching up to 8, two outputs.</summary>
    private static readonly ModelConfig Batched = new()
    {
        Name = "simple",
        MaxBatchSize = 8,
        Inputs = [new("INPUT0", DataType.Int32, [16]), new("INPUT1", DataType.Int32, [16])],
        Outputs = [new("OUTPUT0", DataType.Int32, [16]), new("OUTPUT1", DataType.Int32, [16])],
    };

    /// <summary>No batch dimension; a variable second dimension; an optional BYTES input.</summary>
    private static readonly ModelConfig Unbatched = new()
    {
        Name = "plain",
        MaxBatchSize = 0,
        Inputs = [new("X", DataType.Fp32, [2, -1]), new("TAG", DataType.Bytes, [1], Optional: true)],
        Outputs = [new("Y", DataType.Fp32, [2, -1])],
    };

    private static Tensor Zeros(string name, DataType type, params long[] shape)
    {
        TensorShape.TryGetElementCount(shape, out var count);
        return new Tensor(name, type, shape, TensorBuffer.CopyOf(new byte[count * type.ElementSize()]));
    }

    private static Tensor Raw(string name, DataType type, long[] shape, byte[] data) => new(name, type, shape, TensorBuffer.CopyOf(data));

    private static byte[] BytesElementsOf(params string[] values)
    {
        var stream = new MemoryStream();
        foreach (var v in values)
        {
            var bytes = Encoding.UTF8.GetBytes(v);
            var prefix = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(prefix, (uint)bytes.Length);
            stream.Write(prefix);
            stream.Write(bytes);
        }
        return stream.ToArray();
    }

    private static InferenceRequest Request(params Tensor[] inputs)
    {
        var request = new InferenceRequest("m");
        foreach (var input in inputs)
        {
            request.AddInput(input);
        }
        return request;
    }

    private static string Invalid(InferenceRequest request, ModelConfig config)
    {
        using (request)
        {
            var e = Assert.Throws<InferenceException>(() => RequestValidator.Validate(request, config));
            Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
            return e.Message;
        }
    }

    [Fact]
    public void A_fitting_batched_request_returns_its_batch_size()
    {
        using var request = Request(Zeros("INPUT0", DataType.Int32, 3, 16), Zeros("INPUT1", DataType.Int32, 3, 16));
        request.RequestedOutputs.Add("OUTPUT1");
        Assert.Equal(3, RequestValidator.Validate(request, Batched));
    }

    [Fact]
    public void A_model_without_a_batch_dimension_counts_as_batch_one_and_matches_variable_dimensions()
    {
        // -1 in the configuration takes any size; the optional input may be left out.
        using var request = Request(Zeros("X", DataType.Fp32, 2, 7));
        Assert.Equal(1, RequestValidator.Validate(request, Unbatched));
        using var other = Request(Zeros("X", DataType.Fp32, 2, 0));
        Assert.Equal(1, RequestValidator.Validate(other, Unbatched));
    }

    [Fact]
    public void The_largest_allowed_batch_passes_and_one_more_is_refused()
    {
        using var full = Request(Zeros("INPUT0", DataType.Int32, 8, 16), Zeros("INPUT1", DataType.Int32, 8, 16));
        Assert.Equal(8, RequestValidator.Validate(full, Batched));

        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32, 9, 16), Zeros("INPUT1", DataType.Int32, 9, 16)), Batched);
        Assert.Contains("input 'INPUT0' has shape [9,16]", message);
        Assert.Contains("expects [batch,16] with batch 1..8 (max_batch_size)", message);
        Assert.DoesNotContain("missing", message);
    }

    [Fact]
    public void A_batch_of_zero_is_refused_with_the_expected_shape()
    {
        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32, 0, 16), Zeros("INPUT1", DataType.Int32, 0, 16)), Batched);
        Assert.Contains("input 'INPUT0' has shape [0,16]", message);
        Assert.Contains("[batch,16] with batch 1..8", message);
    }

    [Fact]
    public void A_request_that_forgets_the_batch_dimension_is_told_the_expected_shape()
    {
        // [16] for [-1,16]: the 16 is not a batch size the client meant; the message must say what shape is expected.
        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32, 16), Zeros("INPUT1", DataType.Int32, 16)), Batched);
        Assert.Equal(
            "input 'INPUT0' has shape [16]; model 'simple' expects [batch,16] with batch 1..8 (max_batch_size); is the batch dimension missing?",
            message);
    }

    [Fact]
    public void A_forgotten_batch_dimension_that_fits_the_batch_range_is_a_shape_error_naming_the_expected_shape()
    {
        var config = new ModelConfig
        {
            Name = "small",
            MaxBatchSize = 8,
            Inputs = [new("IN", DataType.Fp32, [4])],
            Outputs = [new("OUT", DataType.Fp32, [4])],
        };
        var message = Invalid(Request(Zeros("IN", DataType.Fp32, 4)), config);
        Assert.Equal("input 'IN' has shape [4] but model 'small' expects [-1,4]", message);
    }

    [Fact]
    public void A_scalar_for_a_batched_model_has_no_batch_dimension()
    {
        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32)), Batched);
        Assert.Equal("input 'INPUT0' has no batch dimension; expected shape [-1,16]", message);
    }

    [Fact]
    public void Inputs_with_different_batch_sizes_are_refused()
    {
        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32, 2, 16), Zeros("INPUT1", DataType.Int32, 3, 16)), Batched);
        Assert.Equal("input 'INPUT1' has batch size 3 but other inputs have 2", message);
    }

    [Theory]
    [InlineData(new long[] { 1, 15 }, "has shape [1,15] but model 'simple' expects [-1,16]")]
    [InlineData(new long[] { 1, 16, 1 }, "has shape [1,16,1] but model 'simple' expects [-1,16]")]
    public void A_wrong_shape_names_the_input_the_shape_and_the_expected_shape(long[] shape, string expected)
    {
        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32, shape), Zeros("INPUT1", DataType.Int32, 1, 16)), Batched);
        Assert.Equal("input 'INPUT0' " + expected, message);
    }

    [Fact]
    public void A_wrong_shape_for_an_unbatched_model_shows_its_dims_without_a_batch_dimension()
    {
        var message = Invalid(Request(Zeros("X", DataType.Fp32, 3, 5)), Unbatched);
        Assert.Equal("input 'X' has shape [3,5] but model 'plain' expects [2,-1]", message);
    }

    [Fact]
    public void A_wrong_datatype_names_both_datatypes()
    {
        var message = Invalid(Request(Zeros("INPUT0", DataType.Fp32, 1, 16), Zeros("INPUT1", DataType.Int32, 1, 16)), Batched);
        Assert.Equal("input 'INPUT0' has datatype FP32 but model 'simple' expects INT32", message);
    }

    [Fact]
    public void An_unknown_input_is_named_with_the_models_inputs()
    {
        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32, 1, 16), Zeros("INPUT2", DataType.Int32, 1, 16)), Batched);
        Assert.Equal("unexpected input 'INPUT2' for model 'simple' (inputs: INPUT0, INPUT1)", message);
    }

    [Fact]
    public void A_missing_required_input_is_named()
    {
        var message = Invalid(Request(Zeros("INPUT0", DataType.Int32, 1, 16)), Batched);
        Assert.Equal("missing input 'INPUT1' for model 'simple'", message);
    }

    [Fact]
    public void An_unknown_requested_output_is_named_with_the_models_outputs()
    {
        var request = Request(Zeros("INPUT0", DataType.Int32, 1, 16), Zeros("INPUT1", DataType.Int32, 1, 16));
        request.RequestedOutputs.Add("OUTPUT0");
        request.RequestedOutputs.Add("OUTPUT9");
        var message = Invalid(request, Batched);
        Assert.Equal("unknown output 'OUTPUT9' requested from model 'simple' (outputs: OUTPUT0, OUTPUT1)", message);
    }

    [Fact]
    public void Data_shorter_or_longer_than_the_shape_needs_is_refused_with_both_sizes()
    {
        var message = Invalid(Request(Raw("INPUT0", DataType.Int32, [1, 16], new byte[60]), Zeros("INPUT1", DataType.Int32, 1, 16)), Batched);
        Assert.Equal("input 'INPUT0' has 60 bytes of data but shape [1,16] of INT32 needs 64", message);
        message = Invalid(Request(Zeros("INPUT0", DataType.Int32, 1, 16), Raw("INPUT1", DataType.Int32, [1, 16], new byte[68])), Batched);
        Assert.Contains("input 'INPUT1' has 68 bytes of data", message);
    }

    [Theory]
    [InlineData(DataType.Fp16)]
    [InlineData(DataType.Bf16)]
    public void Half_width_floats_need_two_bytes_an_element(DataType type)
    {
        var config = new ModelConfig { Name = "h", Inputs = [new("H", type, [3])], Outputs = [new("O", type, [3])] };
        using (var good = Request(Raw("H", type, [3], new byte[6])))
        {
            Assert.Equal(1, RequestValidator.Validate(good, config));
        }
        var message = Invalid(Request(Raw("H", type, [3], new byte[12])), config);
        Assert.Equal($"input 'H' has 12 bytes of data but shape [3] of {type.Name()} needs 6", message);
    }

    [Fact]
    public void Bytes_elements_are_counted_through_their_length_prefixes()
    {
        using (var good = Request(Zeros("X", DataType.Fp32, 2, 1), Raw("TAG", DataType.Bytes, [1], BytesElementsOf("héllo"))))
        {
            Assert.Equal(1, RequestValidator.Validate(good, Unbatched));
        }
        var twoForOne = Invalid(Request(Zeros("X", DataType.Fp32, 2, 1), Raw("TAG", DataType.Bytes, [1], BytesElementsOf("a", "b"))), Unbatched);
        Assert.Equal("input 'TAG' has 2 BYTES elements but shape [1] needs 1", twoForOne);
    }

    [Theory]
    [InlineData(new byte[] { 1, 0, 0 })] // a prefix cut short
    [InlineData(new byte[] { 5, 0, 0, 0, (byte)'a' })] // a length past the end
    public void Malformed_bytes_data_is_refused(byte[] data)
    {
        var message = Invalid(Request(Zeros("X", DataType.Fp32, 2, 1), Raw("TAG", DataType.Bytes, [1], data)), Unbatched);
        Assert.StartsWith("input 'TAG' BYTES data is malformed", message);
    }

    [Fact]
    public void CheckData_refuses_a_negative_dimension()
    {
        using var tensor = Raw("Q", DataType.Fp32, [-1, 2], []);
        var e = Assert.Throws<InferenceException>(() => RequestValidator.CheckData(tensor));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        Assert.Equal("input 'Q' has invalid shape [-1,2]", e.Message);
    }

    // ---- RequestLimits ----

    private static string OverLimit(RequestLimits limits, string name, DataType type, long[] shape, long requestBytes = 0)
    {
        var e = Assert.Throws<InferenceException>(() => limits.CheckInput(name, type, shape, ref requestBytes));
        Assert.Equal(InferenceErrorKind.InvalidArgument, e.Kind);
        return e.Message;
    }

    [Fact]
    public void A_tensor_at_the_element_limit_passes_and_one_over_is_refused_naming_the_limit()
    {
        var limits = new RequestLimits { MaxTensorElements = 100 };
        long bytes = 0;
        limits.CheckInput("A", DataType.Fp32, [10, 10], ref bytes);
        Assert.Equal(400, bytes);
        Assert.Equal(
            "input 'B' has shape [101] of 101 elements, over the limit of 100 (Limits:MaxTensorElements)",
            OverLimit(limits, "B", DataType.Fp32, [101]));
    }

    [Fact]
    public void The_request_byte_limit_adds_up_the_inputs()
    {
        var limits = new RequestLimits { MaxRequestTensorBytes = 100 };
        long bytes = 0;
        limits.CheckInput("A", DataType.Fp64, [10], ref bytes);
        Assert.Equal(80, bytes);
        limits.CheckInput("B", DataType.UInt8, [20], ref bytes);
        Assert.Equal(100, bytes); // exactly at the limit
        var message = OverLimit(limits, "C", DataType.Bool, [1], bytes);
        Assert.Equal("input 'C' has shape [1] of BOOL: the request's tensor data would exceed the limit of 100 bytes (Limits:MaxRequestTensorBytes)", message);
    }

    [Fact]
    public void Bytes_elements_count_four_bytes_each_against_the_request_limit()
    {
        var limits = new RequestLimits { MaxRequestTensorBytes = 40 };
        long bytes = 0;
        limits.CheckInput("S", DataType.Bytes, [10], ref bytes);
        Assert.Equal(40, bytes);
        Assert.Contains("input 'T' has shape [11] of BYTES", OverLimit(limits, "T", DataType.Bytes, [11]));
    }

    [Theory]
    [InlineData(new long[] { 4294967296, 4294967296 })] // 2^64 elements: the count overflows
    [InlineData(new long[] { 2, -3 })]
    public void A_shape_whose_count_is_not_a_count_is_refused(long[] shape)
    {
        Assert.StartsWith($"input 'X' has invalid shape {TensorShape.Format(shape)}", OverLimit(new RequestLimits(), "X", DataType.Fp32, shape));
    }

    [Fact]
    public void A_very_large_element_limit_does_not_let_the_byte_product_overflow()
    {
        // 2^62 FP64 elements are 2^65 bytes: a multiplication would wrap; the limit must still refuse them.
        var limits = new RequestLimits { MaxTensorElements = long.MaxValue, MaxRequestTensorBytes = long.MaxValue };
        Assert.Contains("would exceed the limit", OverLimit(limits, "X", DataType.Fp64, [1L << 62]));
    }

    [Theory]
    [InlineData(0, 1, 1, 1)]
    [InlineData(1, 0, 1, 1)]
    [InlineData(1, 1, 0, 1)]
    [InlineData(1, 1, 1001, 1)]
    [InlineData(1, 1, 1, -1)]
    [InlineData(1, 1, 1, 86_401)]
    [InlineData(1, 1, 1, double.NaN)]
    public void Validate_refuses_limits_no_server_could_run_with(long elements, long bytes, int depth, double timeout)
    {
        var limits = new RequestLimits { MaxTensorElements = elements, MaxRequestTensorBytes = bytes, MaxJsonDepth = depth, DefaultTimeoutSeconds = timeout };
        var e = Assert.Throws<ArgumentException>(limits.Validate);
        Assert.StartsWith("Limits:", e.Message);
    }

    [Fact]
    public void Validate_accepts_the_defaults_and_the_bounds()
    {
        new RequestLimits().Validate();
        new RequestLimits { MaxTensorElements = 1, MaxRequestTensorBytes = 1, MaxJsonDepth = 1000, DefaultTimeoutSeconds = 86_400 }.Validate();
        new RequestLimits { MaxJsonDepth = 1, DefaultTimeoutSeconds = 0 }.Validate();
    }

    [Fact]
    public void The_default_timeout_applies_only_when_nobody_set_a_deadline()
    {
        var limits = new RequestLimits { DefaultTimeoutSeconds = 2.5 };
        using var plain = new InferenceRequest("m") { ReceivedTimestamp = 1000 };
        limits.ApplyDefaultTimeout(plain, modelTimeoutMicroseconds: 0);
        Assert.Equal(1000 + (long)(2.5 * Stopwatch.Frequency), plain.Deadline);

        using var clientDeadline = new InferenceRequest("m") { ReceivedTimestamp = 1000, Deadline = 5 };
        limits.ApplyDefaultTimeout(clientDeadline, 0);
        Assert.Equal(5, clientDeadline.Deadline);

        using var modelTimeout = new InferenceRequest("m") { ReceivedTimestamp = 1000 };
        limits.ApplyDefaultTimeout(modelTimeout, modelTimeoutMicroseconds: 100);
        Assert.Equal(0, modelTimeout.Deadline);

        using var timeoutParameter = new InferenceRequest("m") { ReceivedTimestamp = 1000 };
        timeoutParameter.Parameters["timeout"] = 50L;
        timeoutParameter.ReadSchedulingParameters();
        Assert.Equal(50L, timeoutParameter.TimeoutMicroseconds);
        limits.ApplyDefaultTimeout(timeoutParameter, 0);
        Assert.Equal(0, timeoutParameter.Deadline);

        using var none = new InferenceRequest("m") { ReceivedTimestamp = 1000 };
        new RequestLimits { DefaultTimeoutSeconds = 0 }.ApplyDefaultTimeout(none, 0);
        Assert.Equal(0, none.Deadline);
    }
}
