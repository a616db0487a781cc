using InferenceServer.ModelBuilder;
using InferenceServer.Tests.Infrastructure;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace InferenceServer.Tests.Integration;

/// <summary>One ONNX backend-test case from ../shared/models/onnx/conformance: a model and its golden inputs and outputs.</summary>
public sealed record ConformanceCase(string Name, string ModelPath, IReadOnlyList<OnnxTensor> Inputs, IReadOnlyList<OnnxTensor> Outputs)
{
    public static IReadOnlyList<ConformanceCase> LoadAll()
    {
        var root = Path.Combine(Paths.SharedModels, "onnx", "conformance");
        return Directory.EnumerateDirectories(root)
            .SelectMany(Directory.EnumerateDirectories)
            .Order(StringComparer.Ordinal)
            .Select(dir =>
            {
                var data = Path.Combine(dir, "test_data_set_0");
                return new ConformanceCase(
                    Path.GetFileName(dir),
                    Path.Combine(dir, "model.onnx"),
                    Read(data, "input"),
                    Read(data, "output"));
            })
            .ToArray();
    }

    private static List<OnnxTensor> Read(string dir, string kind)
    {
        var list = new List<OnnxTensor>();
        for (var i = 0; File.Exists(Path.Combine(dir, $"{kind}_{i}.pb")); i++)
        {
            list.Add(TensorProtoFile.Read(Path.Combine(dir, $"{kind}_{i}.pb")));
        }
        return list;
    }

    /// <summary>Runs the case in-process in ONNX Runtime; null when the engine reproduces the golden outputs, else why not.</summary>
    public string? RunInEngine()
    {
        InferenceSession session;
        try
        {
            session = new InferenceSession(ModelPath, new SessionOptions { LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL });
        }
        catch (OnnxRuntimeException e)
        {
            return "load: " + e.Message;
        }
        using (session)
        {
            var values = new List<OrtValue>();
            try
            {
                for (var i = 0; i < Inputs.Count; i++)
                {
                    values.Add(ToOrtValue(Inputs[i]));
                }
                using var results = session.Run(new RunOptions(), session.InputNames.ToArray(), values, session.OutputNames.ToArray());
                var k = 0;
                foreach (var result in results)
                {
                    var expected = WireTensor.FromOnnx(Outputs[k], session.OutputNames[k]);
                    var actual = FromOrtValue(session.OutputNames[k], result);
                    if (expected.Compare(actual) is { } difference)
                    {
                        return difference;
                    }
                    k++;
                }
                return null;
            }
            catch (OnnxRuntimeException e)
            {
                return "run: " + e.Message;
            }
            finally
            {
                values.ForEach(v => v.Dispose());
            }
        }
    }

    private static OrtValue ToOrtValue(OnnxTensor tensor)
    {
        if (tensor.Type == TensorElementKind.String)
        {
            var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, tensor.Dims);
            for (var i = 0; i < tensor.Strings!.Length; i++)
            {
                value.StringTensorSetElementAt(tensor.Strings[i].AsSpan(), i);
            }
            return value;
        }
        var ort = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, (TensorElementType)(int)tensor.Type, tensor.Dims);
        tensor.Data.CopyTo(ort.GetTensorMutableRawData());
        return ort;
    }

    private static WireTensor FromOrtValue(string name, OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        if (info.ElementDataType == TensorElementType.String)
        {
            var strings = Enumerable.Range(0, (int)info.ElementCount).Select(i => value.GetStringElementAsSpan(i).ToArray());
            return new WireTensor(name, "BYTES", info.Shape, WireTensor.EncodeBytes(strings));
        }
        return new WireTensor(name, WireTensor.DatatypeOf((TensorElementKind)(int)info.ElementDataType), info.Shape, value.GetTensorMutableRawData().ToArray());
    }
}

/// <summary>Serves every conformance case from one repository (symlinks into ../shared) and runs each in-process once.</summary>
public sealed class ConformanceFixture : IAsyncLifetime
{
    public IReadOnlyList<ConformanceCase> Cases { get; private set; } = [];

    /// <summary>The cases in-process ONNX Runtime reproduces; the server must reproduce every one of them.</summary>
    public IReadOnlyList<ConformanceCase> EngineCases { get; private set; } = [];

    public Dictionary<string, string> EngineFailures { get; } = [];

    public RunningServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Cases = ConformanceCase.LoadAll();
        var passing = new List<ConformanceCase>();
        foreach (var c in Cases)
        {
            if (c.RunInEngine() is { } failure)
            {
                EngineFailures[c.Name] = failure;
            }
            else
            {
                passing.Add(c);
            }
        }
        EngineCases = passing;
        var repository = Paths.NewTempDirectory("conformance-repo");
        foreach (var c in Cases)
        {
            Paths.LinkModel(repository, c.Name, c.ModelPath);
        }
        Server = await RunningServer.StartAsync(repository, "--strict-readiness", "false");
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public sealed class ConformanceTests(ConformanceFixture fixture) : IClassFixture<ConformanceFixture>
{
    /// <summary>
    /// The cases in-process ONNX Runtime reproduces, pinned by name so that a case that stops passing (or starts) names
    /// itself. The rest use operators of opset 6 that the runtime no longer implements, or the training-only Gradient.
    /// </summary>
    private static readonly string[] EnginePassing =
    [
        "test_ConstantPad2d", "test_Conv1d", "test_Conv1d_dilated", "test_Conv1d_groups", "test_Conv1d_pad1",
        "test_Conv1d_pad1size1", "test_Conv1d_pad2", "test_Conv1d_pad2size1", "test_Conv1d_stride", "test_Conv2d",
        "test_Conv2d_depthwise", "test_Conv2d_depthwise_padded", "test_Conv2d_depthwise_strided",
        "test_Conv2d_depthwise_with_multiplier", "test_Conv2d_dilated", "test_Conv2d_groups",
        "test_Conv2d_groups_thnn", "test_Conv2d_no_bias", "test_Conv2d_padding", "test_Conv2d_strided", "test_Conv3d",
        "test_Conv3d_dilated", "test_Conv3d_dilated_strided", "test_Conv3d_groups", "test_Conv3d_no_bias",
        "test_Conv3d_stride", "test_Conv3d_stride_padding", "test_ConvTranspose2d", "test_ConvTranspose2d_no_bias",
        "test_ELU", "test_Embedding", "test_Embedding_sparse", "test_LeakyReLU", "test_LeakyReLU_with_negval",
        "test_Linear_no_bias", "test_LogSoftmax", "test_MaxPool1d", "test_MaxPool1d_stride",
        "test_MaxPool1d_stride_padding_dilation", "test_MaxPool2d", "test_MaxPool2d_stride_padding_dilation",
        "test_MaxPool3d", "test_MaxPool3d_stride", "test_MaxPool3d_stride_padding", "test_PixelShuffle", "test_ReLU",
        "test_ReflectionPad2d", "test_ReplicationPad2d", "test_SELU", "test_Sigmoid", "test_Softmax", "test_Softmin",
        "test_Softplus", "test_Tanh", "test_ZeroPad2d", "test_expand_shape_model1", "test_expand_shape_model2",
        "test_expand_shape_model3", "test_expand_shape_model4", "test_log_softmax_dim3", "test_log_softmax_lastdim",
        "test_sequence_model1", "test_sequence_model2", "test_sequence_model3", "test_sequence_model4",
        "test_sequence_model5", "test_sequence_model6", "test_sequence_model7", "test_sequence_model8", "test_shrink",
        "test_sign_model", "test_single_relu_model", "test_softmax_functional_dim3", "test_softmax_lastdim",
        "test_strnorm_model_monday_casesensintive_lower", "test_strnorm_model_monday_casesensintive_nochangecase",
        "test_strnorm_model_monday_casesensintive_upper", "test_strnorm_model_monday_empty_output",
        "test_strnorm_model_monday_insensintive_upper_twodim", "test_strnorm_model_nostopwords_nochangecase",
    ];

    /// <summary>
    /// String-normalizer cases that change case: ONNX Runtime's StringNormalizer needs the en_US.UTF-8 locale for them
    /// and refuses them without it. The cases that keep the case pass either way.
    /// </summary>
    private static readonly string[] NeedLocale =
    [
        "test_strnorm_model_monday_casesensintive_lower", "test_strnorm_model_monday_casesensintive_upper",
        "test_strnorm_model_monday_empty_output", "test_strnorm_model_monday_insensintive_upper_twodim",
    ];

    /// <summary>Whether the C library can open <paramref name="name"/> (what ONNX Runtime's std::locale does), not merely whether it is listed.</summary>
    private static bool HasLocale(string name)
    {
        var handle = NewLocale(LcAllMask, name, IntPtr.Zero);
        if (handle == IntPtr.Zero)
        {
            return false;
        }
        FreeLocale(handle);
        return true;
    }

    private const int LcAllMask = 0x1FBF; // glibc's LC_ALL_MASK

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "newlocale")]
    private static extern IntPtr NewLocale(int mask, [System.Runtime.InteropServices.MarshalAs(System.Runtime.InteropServices.UnmanagedType.LPUTF8Str)] string locale, IntPtr baseLocale);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "freelocale")]
    private static extern void FreeLocale(IntPtr locale);

    private static readonly bool LocaleInstalled = HasLocale("en_US.UTF-8");

    /// <summary>The cases expected to pass in the engine on this machine.</summary>
    private static IReadOnlySet<string> Expected => EnginePassing.Where(c => LocaleInstalled || !NeedLocale.Contains(c)).ToHashSet();

    [Fact]
    public void Engine_reproduces_exactly_the_pinned_cases()
    {
        Assert.Equal(105, fixture.Cases.Count);
        var passing = fixture.EngineCases.Select(c => c.Name).ToHashSet();
        var missing = Expected.Except(passing).Order(StringComparer.Ordinal).ToArray();
        var unexpected = passing.Except(Expected).Order(StringComparer.Ordinal).ToArray();
        Assert.True(missing.Length == 0 && unexpected.Length == 0,
            $"en_US.UTF-8 {(LocaleInstalled ? "available" : "not available")}; pinned cases the engine no longer passes:\n" +
            string.Join("\n", missing.Select(m => $"  {m}: {fixture.EngineFailures.GetValueOrDefault(m)}")) +
            "\ncases the engine passes that are not pinned:\n" + string.Join("\n", unexpected.Select(u => "  " + u)));
    }

    [Fact]
    public void The_locale_dependent_cases_are_pinned_cases()
    {
        Assert.All(NeedLocale, c => Assert.Contains(c, EnginePassing));
        Assert.All(NeedLocale, c => Assert.StartsWith("test_strnorm_", c));
    }

    [Fact]
    public async Task Derived_inputs_are_the_real_graph_inputs_not_initializers()
    {
        // The pytorch-converted cases are IR 3 graphs that list their weights as graph inputs with initializers;
        // only the data inputs (one golden file each) may show up as model inputs.
        var weighted = 0;
        foreach (var c in fixture.EngineCases)
        {
            var metadata = await fixture.Server.Grpc.ModelMetadataAsync(new Protocol.ModelMetadataRequest { Name = c.Name });
            Assert.True(c.Inputs.Count == metadata.Inputs.Count, $"{c.Name}: {metadata.Inputs.Count} inputs, {c.Inputs.Count} golden inputs");
            Assert.Equal(c.Outputs.Count, metadata.Outputs.Count);
            using var session = new InferenceSession(c.ModelPath);
            weighted += session.OverridableInitializerMetadata.Count > 0 ? 1 : 0;
        }
        Assert.True(weighted > 0, $"only {weighted} cases have initializer-backed graph inputs");
    }

    [Theory]
    [InlineData(TensorEncoding.GrpcRaw)]
    [InlineData(TensorEncoding.GrpcTyped)]
    [InlineData(TensorEncoding.RestJson)]
    [InlineData(TensorEncoding.RestBinary)]
    public async Task Server_matches_the_golden_outputs_of_every_case_the_engine_passes(TensorEncoding encoding)
    {
        var failures = new List<string>();
        var passed = 0;
        foreach (var c in fixture.EngineCases)
        {
            try
            {
                var metadata = await fixture.Server.Grpc.ModelMetadataAsync(new Protocol.ModelMetadataRequest { Name = c.Name });
                var inputs = c.Inputs.Select((t, i) => WireTensor.FromOnnx(t, metadata.Inputs[i].Name)).ToArray();
                var outputs = await InferClient.InferAsync(fixture.Server, encoding, c.Name, inputs);
                Assert.Equal(c.Outputs.Count, outputs.Count);
                var differences = c.Outputs.Select((t, i) => WireTensor.FromOnnx(t, metadata.Outputs[i].Name).Compare(outputs[i])).OfType<string>().ToArray();
                if (differences.Length > 0)
                {
                    failures.Add($"{c.Name}: {string.Join("; ", differences)}");
                }
                else
                {
                    passed++;
                }
            }
            catch (Exception e)
            {
                failures.Add($"{c.Name}: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} cases differ over {encoding}:\n" + string.Join("\n", failures));
        Assert.Equal(Expected.Count, passed);
    }
}
