using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using InferenceServer.Inference;
using InferenceServer.Tensors;
using Tensor = InferenceServer.Tensors.Tensor;

namespace InferenceServer.Generation;

/// <summary>Reads rows of an engine's logits output (FP32, FP16 or BF16) as the FP32 the sampler takes.</summary>
internal static class LogitsRows
{
    /// <summary>
    /// Copies the logits of position <paramref name="position"/> of batch row <paramref name="row"/> of
    /// <paramref name="logits"/> (<c>[batch, positions, width]</c>, or <c>[batch, width]</c> with one position) into
    /// <paramref name="destination"/> (<paramref name="destination"/>.Length = width).
    /// </summary>
    public static void Copy(Tensor logits, int row, int positions, int position, Span<float> destination)
    {
        var width = destination.Length;
        var start = (((long)row * positions) + position) * width;
        var bytes = logits.Data.Span;
        switch (logits.DataType)
        {
            case DataType.Fp32:
                MemoryMarshal.Cast<byte, float>(bytes).Slice((int)start, width).CopyTo(destination);
                break;
            case DataType.Fp16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes).Slice((int)start, width), destination);
                break;
            case DataType.Bf16:
                var source = MemoryMarshal.Cast<byte, ushort>(bytes).Slice((int)start, width);
                for (var i = 0; i < width; i++)
                {
                    destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
                }
                break;
            default:
                throw new InferenceException(InferenceErrorKind.Internal, $"the model returned {logits.DataType.ConfigName()} logits; expected TYPE_FP32, TYPE_FP16 or TYPE_BF16");
        }
    }

    /// <summary>Checks that <paramref name="logits"/> is <paramref name="type"/> with <paramref name="rows"/> rows and width <paramref name="width"/>; returns its positions per row.</summary>
    public static int Check(Tensor logits, DataType type, int rows, int width)
    {
        var shape = logits.Shape;
        if (shape.Length is < 2 or > 3 || shape[0] != rows || shape[^1] != width || logits.DataType != type)
        {
            throw new InferenceException(InferenceErrorKind.Internal,
                $"the model returned logits of shape [{string.Join(",", shape)}] {logits.DataType.ConfigName()}; expected {type.ConfigName()} [{rows},...,{width}]");
        }
        return shape.Length == 3 ? (int)shape[1] : 1;
    }
}
