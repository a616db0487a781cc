using InferenceServer.ModelBuilder.Decoders;
using Microsoft.ML.OnnxRuntimeGenAI;
using Xunit.Abstractions;

namespace InferenceServer.Tests.ModelBuilder.Decoders;

/// <summary>
/// onnxruntime-genai as the second reference: it loads the written directory (<c>genai_config.json</c>, <c>model.onnx</c>,
/// the tokenizer files) and its greedy search generates the same tokens as greedy decoding through the graph run
/// directly in ONNX Runtime (<see cref="GenAiSession"/>).
/// </summary>
public sealed class GenAiRuntimeTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "genai-runtime-" + Guid.NewGuid().ToString("N"));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Onnxruntime_genai_greedy_search_generates_the_tokens_of_greedy_decoding_through_the_graph(bool externalData)
    {
        var options = GenAiDecoderTests.Options with { ExternalData = externalData };
        var written = DecoderModelWriter.Write(options, _dir);
        Assert.Equal(externalData, written.Any(p => p.EndsWith("model.onnx.data", StringComparison.Ordinal)));
        long[] prompt = SmallDecoderFixture.Prompt("genai runtime", 10);
        const int NewTokens = 12;

        var expected = new List<long>();
        using (var session = new GenAiSession(options, DecoderModelWriter.EmbeddedModelBytes(options with { ExternalData = false })))
        {
            var tokens = prompt.ToList();
            var step = session.Run([prompt], [DecoderSession.Ones(prompt.Length)], KvCache.Empty(options, 1));
            while (expected.Count < NewTokens)
            {
                long next = Logits.Top(step.At(0, step.Sequence - 1)).Token;
                expected.Add(next);
                if (next == options.EosTokenId)
                {
                    break;
                }

                tokens.Add(next);
                step = session.Run([[next]], [DecoderSession.Ones(tokens.Count)], step.Present);
            }
        }

        using var model = new Model(_dir);
        using var tokenizer = new Tokenizer(model);
        using var generatorParams = new GeneratorParams(model);
        generatorParams.SetSearchOption("max_length", prompt.Length + NewTokens);
        generatorParams.SetSearchOption("do_sample", false);
        using var generator = new Generator(model, generatorParams);
        generator.AppendTokens(prompt.Select(t => (int)t).ToArray());
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        long[] generated = generator.GetSequence(0).ToArray().Skip(prompt.Length).Select(t => (long)t).ToArray();
        output.WriteLine($"onnxruntime-genai: [{string.Join(", ", generated)}]; direct ORT greedy: [{string.Join(", ", expected)}]");
        output.WriteLine($"decoded by onnxruntime-genai's tokenizer: \"{tokenizer.Decode(generated.Select(t => (int)t).ToArray())}\"");
        Assert.Equal(expected, generated);
        Assert.True(generated.Distinct().Count() > 1, "the generated tokens should not all be one token");
    }

    /// <summary>
    /// onnxruntime-genai batches prompts of different lengths on the CPU by right padding (pad_token_id after the
    /// shorter prompt, zeros in its attention mask), the contract GroupQueryAttention needs: each row's generated tokens
    /// are the row's own greedy decoding.
    /// </summary>
    [Fact]
    public void Onnxruntime_genai_right_pads_a_batch_of_two_prompts_and_each_row_generates_its_own_greedy_tokens()
    {
        var options = GenAiDecoderTests.Options;
        DecoderModelWriter.Write(options, _dir);
        const int NewTokens = 8;
        using var model = new Model(_dir);
        using var tokenizer = new Tokenizer(model);
        using var sequences = tokenizer.EncodeBatch(["The quick brown fox jumps over the lazy dog", "Hello"]);
        var prompts = Enumerable.Range(0, 2).Select(i => sequences[(ulong)i].ToArray()).ToArray();
        output.WriteLine($"prompts: [{string.Join(", ", prompts[0])}] / [{string.Join(", ", prompts[1])}]");
        using var generatorParams = new GeneratorParams(model);
        generatorParams.SetSearchOption("max_length", prompts.Max(p => p.Length) + NewTokens);
        generatorParams.SetSearchOption("batch_size", 2);
        generatorParams.SetSearchOption("do_sample", false);
        using var generator = new Generator(model, generatorParams);
        generator.AppendTokenSequences(sequences);
        while (!generator.IsDone())
        {
            generator.GenerateNextToken();
        }

        using var session = new GenAiSession(options, DecoderModelWriter.EmbeddedModelBytes(options));
        for (int b = 0; b < 2; b++)
        {
            int[] got = generator.GetSequence((ulong)b).ToArray();
            var tokens = prompts[b].Select(t => (long)t).ToList();
            var step = session.Run([tokens.ToArray()], [DecoderSession.Ones(tokens.Count)], KvCache.Empty(options, 1));
            var expected = new List<long>();
            for (int n = 0; n < NewTokens; n++)
            {
                long next = Logits.Top(step.At(0, step.Sequence - 1)).Token;
                expected.Add(next);
                tokens.Add(next);
                step = session.Run([[next]], [DecoderSession.Ones(tokens.Count)], step.Present);
            }

            output.WriteLine($"row {b}: onnxruntime-genai [{string.Join(", ", got)}]; direct ORT greedy after the prompt: [{string.Join(", ", expected)}]");
            int width = prompts.Max(p => p.Length);
            Assert.Equal(prompts[b], got[..prompts[b].Length]);
            Assert.All(got[prompts[b].Length..width], t => Assert.Equal(options.PadTokenId, t));
            Assert.Equal(expected, got[width..].Select(t => (long)t));
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }
}
