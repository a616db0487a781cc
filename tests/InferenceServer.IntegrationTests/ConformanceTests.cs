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
    /// Of the 105 cases, ONNX Runtime 1.31.1 reproduces 80 in-process: 23 use opset-6 operators the runtime no
    /// longer implements and 2 need the training-only Gradient operator. The six string-normalizer cases also need
    /// the en_US.UTF-8 locale (which CI installs); without it the engine refuses them too. Pinned so that a case
    /// silently dropped fails the test.
    /// </summary>
    private static readonly int ExpectedEngineCases = HasLocale("en_US.utf8") ? 80 : 74;

    private static bool HasLocale(string name)
    {
        var info = Backends.TorchSharp.LibStdCxxCompat.ChildProcess("locale", "-a");
        info.RedirectStandardOutput = true;
        using var process = System.Diagnostics.Process.Start(info)!;
        var output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return output.Split('\n').Any(l => l.Trim().Equals(name, StringComparison.OrdinalIgnoreCase) || l.Trim().Equals(name.Replace("utf8", "UTF-8"), StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void Engine_reproduces_the_expected_number_of_cases()
    {
        Assert.Equal(105, fixture.Cases.Count);
        Assert.True(ExpectedEngineCases == fixture.EngineCases.Count,
            $"expected {ExpectedEngineCases} engine-passing cases, got {fixture.EngineCases.Count}; engine failures:\n" +
            string.Join("\n", fixture.EngineFailures.Select(kv => $"  {kv.Key}: {kv.Value}")));
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
        Assert.Equal(ExpectedEngineCases, passed);
    }
}
