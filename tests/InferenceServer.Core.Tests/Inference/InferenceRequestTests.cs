using InferenceServer.Inference;

namespace InferenceServer.Tests.Core.Inference;

/// <summary>Triton's scheduling parameters read once into the request's typed fields (every adapter calls this).</summary>
public sealed class InferenceRequestTests
{
    [Fact]
    public void Priority_and_timeout_become_typed_fields()
    {
        using var request = new InferenceRequest("m");
        Assert.Equal(0, request.Priority);
        Assert.Null(request.TimeoutMicroseconds);
        request.Parameters["priority"] = 2L;
        request.Parameters["timeout"] = 0L;
        request.ReadSchedulingParameters();
        Assert.Equal(2, request.Priority);
        Assert.Equal(0L, request.TimeoutMicroseconds);
    }

    [Theory]
    [InlineData("priority", "high")]
    [InlineData("priority", -1L)]
    [InlineData("priority", 1.5)]
    [InlineData("timeout", true)]
    [InlineData("timeout", -5L)]
    public void A_value_of_the_wrong_type_is_the_clients_mistake_naming_the_parameter(string name, object value)
    {
        using var request = new InferenceRequest("m");
        request.Parameters[name] = value;
        var error = Assert.Throws<InferenceException>(request.ReadSchedulingParameters);
        Assert.Equal(InferenceErrorKind.InvalidArgument, error.Kind);
        Assert.Contains($"parameter '{name}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Other_parameters_are_left_alone()
    {
        using var request = new InferenceRequest("m");
        request.Parameters["sequence_id"] = "abc";
        request.ReadSchedulingParameters();
        Assert.Equal(0, request.Priority);
        Assert.Null(request.TimeoutMicroseconds);
        Assert.Equal("abc", request.Parameters["sequence_id"]);
    }
}
