using System.Text.Json;
using InferenceServer.Client;

namespace InferenceServer.Tests.Client;

/// <summary><see cref="Tensor.FromJsonData"/>, <see cref="Tensor.WithName"/> and <see cref="DataType.IsKnown"/>.</summary>
public sealed class ClientJsonDataTests
{
    private static JsonElement Json(string text) => JsonDocument.Parse(text).RootElement;

    [Fact]
    public void Nested_data_becomes_a_row_major_tensor_and_a_missing_shape_is_one_dimension()
    {
        var nested = Tensor.FromJsonData("x", DataType.Int32, [2, 2], Json("[[1, 2], [3, -4]]"));
        Assert.Equal([1, 2, 3, -4], nested.ToArray<int>());
        Assert.Equal([2L, 2L], nested.Shape);

        var flat = Tensor.FromJsonData("f", DataType.Fp32, null, Json("[0.5, \"NaN\", \"-Infinity\"]"));
        Assert.Equal([3L], flat.Shape);
        Assert.True(float.IsNaN(flat.ToArray<float>()[1]));
        Assert.Equal(float.NegativeInfinity, flat.ToArray<float>()[2]);

        Assert.Equal([true, false, true], Tensor.FromJsonData("b", DataType.Bool, null, Json("[true, false, 1]")).ToArray<bool>());
        Assert.Equal(["a", "é"], Tensor.FromJsonData("s", DataType.Bytes, [2], Json("[\"a\", \"é\"]")).ToStrings());
    }

    [Fact]
    public void Bad_values_name_the_element_and_a_wrong_count_names_the_shape()
    {
        var bad = Assert.Throws<FormatException>(() => Tensor.FromJsonData("x", DataType.UInt8, null, Json("[1, 300]")));
        Assert.Equal("element 1: 300 is not a valid UINT8 value", bad.Message);
        var notBool = Assert.Throws<FormatException>(() => Tensor.FromJsonData("b", DataType.Bool, null, Json("[2]")));
        Assert.Equal("element 0: 2 is not a valid BOOL value", notBool.Message);
        var count = Assert.Throws<ArgumentException>(() => Tensor.FromJsonData("x", DataType.Int32, [2, 2], Json("[1, 2, 3]")));
        Assert.Contains("holds 4 elements but 3 were given", count.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => Tensor.FromJsonData("x", "INT128", null, Json("[1]")));
    }

    [Fact]
    public void WithName_shares_the_values_and_IsKnown_knows_every_datatype()
    {
        var tensor = Tensor.Create("a", new[] { 1L, 2L }, 1, 2);
        var renamed = tensor.WithName("b");
        Assert.Equal("b", renamed.Name);
        Assert.Equal(tensor.Shape, renamed.Shape);
        Assert.Equal(tensor.ToRawBytes(), renamed.ToRawBytes());
        Assert.All(DataType.All, d => Assert.True(DataType.IsKnown(d)));
        Assert.Equal(14, DataType.All.Count);
        Assert.False(DataType.IsKnown("fp32"));
    }
}
