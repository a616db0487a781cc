using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using InferenceServer.Inference;
using InferenceServer.Tensors;

namespace InferenceServer.Generation;

/// <summary>
/// A generative model seen through the tensor APIs (REST and gRPC infer), as Triton's vLLM backend presents one: a
/// BYTES input <c>text_input</c> holding the prompt, optional inputs <c>max_tokens</c> (INT32) and <c>stream</c> (BOOL),
/// request parameters for sampling, and a BYTES output <c>text_output</c>. The dispatcher turns such a request into a
/// generation when the model it names is generative.
/// </summary>
public static class TextTensors
{
    /// <summary>The BYTES input holding the prompt.</summary>
    public const string TextInput = "text_input";

    /// <summary>The BYTES output holding the generated text.</summary>
    public const string TextOutput = "text_output";

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Reads the prompt, the optional inputs and the request parameters (max_tokens, temperature, top_p, top_k, seed,
    /// stop, ignore_eos, stream); an input <c>max_tokens</c> wins over the parameter. Unknown parameters are ignored
    /// (Triton's clients send their own, such as priority and timeout); unknown inputs are refused.
    /// </summary>
    public static GenerationRequest ToGenerationRequest(InferenceRequest request, out bool? stream)
    {
        string? prompt = null;
        int? maxTokensInput = null;
        stream = null;
        foreach (var input in request.Inputs)
        {
            switch (input.Name)
            {
                case TextInput:
                    prompt = ReadText(input);
                    break;
                case "max_tokens":
                    maxTokensInput = ReadMaxTokens(input);
                    break;
                case "stream":
                    stream = ReadBool(input);
                    break;
                default:
                    throw InferenceException.InvalidArgument(
                        $"input '{input.Name}' is not an input of generative model '{request.ModelName}'; it takes {TextInput} (BYTES) and optionally max_tokens (INT32) and stream (BOOL)");
            }
        }
        if (prompt is null)
        {
            throw InferenceException.InvalidArgument($"generative model '{request.ModelName}' needs input '{TextInput}' (BYTES, shape [1]) holding the prompt");
        }
        foreach (var output in request.RequestedOutputs)
        {
            if (output != TextOutput)
            {
                throw InferenceException.InvalidArgument($"output '{output}' is not an output of generative model '{request.ModelName}'; it has only {TextOutput}");
            }
        }

        int? maxTokens = null;
        float temperature = 1f, topP = 1f;
        var topK = 0;
        ulong? seed = null;
        IReadOnlyList<string> stop = [];
        var ignoreEos = false;
        foreach (var (key, value) in request.Parameters)
        {
            switch (key)
            {
                case "max_tokens":
                    var n = Integer(key, value);
                    maxTokens = n >= 1 ? (int)Math.Min(n, int.MaxValue) : throw InferenceException.InvalidArgument($"parameter 'max_tokens' must be a positive integer, not {n}");
                    break;
                case "temperature":
                    temperature = (float)Number(key, value);
                    break;
                case "top_p":
                    topP = (float)Number(key, value);
                    break;
                case "top_k":
                    var k = Integer(key, value);
                    topK = k is >= -1 and <= int.MaxValue ? (int)Math.Max(k, 0) : throw InferenceException.InvalidArgument($"parameter 'top_k' must be -1 or 0 (off) or positive, not {k}");
                    break;
                case "seed":
                    seed = unchecked((ulong)Integer(key, value));
                    break;
                case "stop":
                    stop = value is string { Length: > 0 } s ? [s] : throw InferenceException.InvalidArgument("parameter 'stop' must be a non-empty string");
                    break;
                case "ignore_eos":
                    ignoreEos = value is bool b ? b : throw InferenceException.InvalidArgument("parameter 'ignore_eos' must be a bool");
                    break;
                case "stream":
                    stream ??= value is bool streamed ? streamed : throw InferenceException.InvalidArgument("parameter 'stream' must be a bool");
                    break;
            }
        }
        var sampling = new SamplingParameters { Temperature = temperature, TopK = topK, TopP = topP, Seed = seed };
        sampling.Validate();
        var generation = new GenerationRequest
        {
            Prompt = prompt,
            MaxTokens = maxTokensInput ?? maxTokens,
            Sampling = sampling,
            Stop = stop,
            IgnoreEos = ignoreEos,
            Operation = "generate",
            Id = request.Id,
            Tenant = request.Tenant,
        };
        // The request's deadline (a gRPC deadline) and Triton's timeout parameter bound the whole generation.
        generation.SetDeadline(request.ReceivedTimestamp, request.TimeoutMicroseconds, request.Deadline);
        return generation;
    }

    /// <summary>A BYTES tensor <c>text_output</c> of shape [1] holding <paramref name="text"/>.</summary>
    public static Tensor TextTensor(string text)
    {
        using var writer = new TensorWriter(Tensors.DataType.Bytes, 1);
        var bytes = Encoding.UTF8.GetBytes(text);
        writer.WriteBytes(bytes);
        return new Tensor(TextOutput, Tensors.DataType.Bytes, [1], writer.Detach());
    }

    private static string ReadText(Tensor input)
    {
        var data = SingleElement(input, Tensors.DataType.Bytes, "BYTES");
        if (!BytesElements.TryCount(data, out var count) || count != 1)
        {
            throw InferenceException.InvalidArgument($"input '{input.Name}' must hold exactly one string (shape [1] or [1, 1])");
        }
        try
        {
            return StrictUtf8.GetString(BytesElements.ReadNext(ref data));
        }
        catch (DecoderFallbackException)
        {
            throw InferenceException.InvalidArgument($"input '{input.Name}' is not valid UTF-8");
        }
    }

    private static int ReadMaxTokens(Tensor input)
    {
        long value = input.DataType switch
        {
            Tensors.DataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(SingleElement(input, Tensors.DataType.Int32, "INT32")),
            Tensors.DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(SingleElement(input, Tensors.DataType.Int64, "INT64")),
            _ => throw InferenceException.InvalidArgument($"input '{input.Name}' must be INT32, not {input.DataType.Name()}"),
        };
        return value >= 1 ? (int)Math.Min(value, int.MaxValue) : throw InferenceException.InvalidArgument($"input '{input.Name}' must be a positive integer, not {value}");
    }

    private static bool ReadBool(Tensor input) => SingleElement(input, Tensors.DataType.Bool, "BOOL")[0] != 0;

    /// <summary>The bytes of a one-element tensor of <paramref name="type"/>.</summary>
    private static ReadOnlySpan<byte> SingleElement(Tensor input, Tensors.DataType type, string typeName)
    {
        if (input.DataType != type)
        {
            throw InferenceException.InvalidArgument($"input '{input.Name}' must be {typeName}, not {input.DataType.Name()}");
        }
        if (!TensorShape.TryGetElementCount(input.Shape, out var count) || count != 1)
        {
            throw InferenceException.InvalidArgument($"input '{input.Name}' must hold one element (shape [1] or [1, 1]), not shape {TensorShape.Format(input.Shape)}");
        }
        var size = type.ElementSize();
        if (size > 0 && input.Data.Length != size)
        {
            throw InferenceException.InvalidArgument($"input '{input.Name}' has {input.Data.Length} bytes; one {typeName} element is {size}");
        }
        return input.Data.Span;
    }

    private static long Integer(string key, object value) => value switch
    {
        long l => l,
        double d when d == Math.Floor(d) && d is >= long.MinValue and <= long.MaxValue => (long)d,
        _ => throw InferenceException.InvalidArgument($"parameter '{key}' must be an integer, not {Describe(value)}"),
    };

    private static double Number(string key, object value) => value switch
    {
        long l => l,
        double d => d,
        _ => throw InferenceException.InvalidArgument($"parameter '{key}' must be a number, not {Describe(value)}"),
    };

    private static string Describe(object value) => value switch
    {
        string s => $"the string '{s}'",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
