using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;
using InferenceServer.Backends;
using InferenceServer.Configuration;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tensors;

namespace InferenceServer.Lifecycle;

/// <summary>One input of a warmup sample, ready to run: the full shape (batch included) and the bytes of every row.</summary>
internal sealed record WarmupTensor(string Name, DataType DataType, long[] Shape, byte[] Data);

/// <summary>One warmup sample, checked against the model's configuration.</summary>
internal sealed record WarmupSample(string Name, int BatchSize, int Count, IReadOnlyList<WarmupTensor> Inputs);

/// <summary>
/// A model's warmup, as Triton's <c>model_warmup</c>: samples of synthetic (zero or random) or file data, checked
/// against the resolved configuration when the model loads, then run <c>count</c> times each on every engine instance,
/// directly on the backend (no queue, no statistics), before the version becomes ready. Engines that compile,
/// allocate or tune on their first runs do it here instead of in the first client requests.
/// </summary>
internal sealed class ModelWarmup
{
    /// <summary>The directory beside the model's version directories that holds <c>input_data_file</c>s (Triton's name).</summary>
    public const string DataDirectory = "warmup";

    // Random integers stay small so that they fit every integer type (INT8 included) and index small tables.
    private const int RandomIntegerLimit = 128;

    private readonly ModelConfig _config;

    private ModelWarmup(ModelConfig config, IReadOnlyList<WarmupSample> samples)
    {
        _config = config;
        Samples = samples;
    }

    /// <summary>The samples, in the configuration's order.</summary>
    public IReadOnlyList<WarmupSample> Samples { get; }

    /// <summary>Executions each instance runs: the sum of the samples' counts.</summary>
    public int ExecutionsPerInstance => Samples.Sum(s => s.Count);

    /// <summary>
    /// Checks the <c>model_warmup</c> entries against the resolved configuration (<paramref name="config"/>, with its
    /// generation section when it has one) and builds each sample's data; files are read from the model directory's
    /// <c>warmup/</c>. Throws <see cref="ModelConfigException"/> naming the sample and what is wrong.
    /// </summary>
    public static ModelWarmup Resolve(IReadOnlyList<ModelConfigFile.WarmupEntry>? entries, ModelConfig config, string modelDirectory, int? tokenVocabulary = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        var samples = new List<WarmupSample>();
        // Pseudo-random, but the same on every load (as Triton's rand()), so a warmup that fails fails again.
        var random = new Random(0x5EED);
        for (var index = 0; index < (entries?.Count ?? 0); index++)
        {
            var entry = entries![index] ?? throw new ModelConfigException($"model_warmup[{index}] is empty");
            if (string.IsNullOrWhiteSpace(entry.Name))
            {
                throw new ModelConfigException($"model_warmup[{index}] needs a name");
            }
            var what = $"model_warmup '{entry.Name}'";
            var batch = entry.BatchSize ?? 0;
            if (batch < 0)
            {
                throw new ModelConfigException($"{what}: batch_size must not be negative");
            }
            if (config.MaxBatchSize > 0)
            {
                batch = Math.Max(1, batch);
                if (batch > config.MaxBatchSize)
                {
                    throw new ModelConfigException($"{what}: batch_size {batch} exceeds max_batch_size {config.MaxBatchSize}");
                }
            }
            else if (batch > 1)
            {
                throw new ModelConfigException($"{what}: batch_size {batch} needs a batch dimension, but max_batch_size is 0");
            }
            var count = entry.Count ?? 0;
            if (count < 0)
            {
                throw new ModelConfigException($"{what}: count must not be negative");
            }
            var inputs = entry.Inputs ?? [];
            foreach (var name in inputs.Keys)
            {
                if (config.FindInput(name) is null)
                {
                    throw new ModelConfigException($"{what}: the model has no input '{name}' (its inputs: {string.Join(", ", config.Inputs.Select(i => i.Name))})");
                }
            }
            var tensors = new List<WarmupTensor>();
            foreach (var input in config.Inputs)
            {
                if (inputs.TryGetValue(input.Name, out var data))
                {
                    tensors.Add(ResolveInput(what, input, data, config, batch, modelDirectory, random, tokenVocabulary));
                }
                else if (!input.Optional)
                {
                    throw new ModelConfigException($"{what}: input '{input.Name}' is missing (every input that is not optional needs data)");
                }
            }
            samples.Add(new WarmupSample(entry.Name, batch, Math.Max(1, count), tensors));
        }
        return new ModelWarmup(config, samples);
    }

    /// <summary>
    /// Runs every sample <c>count</c> times on each instance (the instances at the same time), asking for every output.
    /// Throws <see cref="WarmupException"/> when the engine fails, naming the sample.
    /// </summary>
    public void Run(IReadOnlyList<IBackendModel> instances, CancellationToken cancellationToken)
    {
        if (Samples.Count == 0)
        {
            return;
        }
        if (instances.Count == 1)
        {
            RunOn(instances[0], cancellationToken);
            return;
        }
        try
        {
            Parallel.For(
                0,
                instances.Count,
                new ParallelOptions { MaxDegreeOfParallelism = instances.Count, CancellationToken = cancellationToken },
                i => RunOn(instances[i], cancellationToken));
        }
        catch (AggregateException e)
        {
            ExceptionDispatchInfo.Throw(e.InnerExceptions[0]);
        }
    }

    private void RunOn(IBackendModel instance, CancellationToken cancellationToken)
    {
        using var run = new EngineRun();
        foreach (var sample in Samples)
        {
            for (var count = 0; count < sample.Count; count++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                run.Inputs.Clear();
                foreach (var input in sample.Inputs)
                {
                    // The engine only reads its inputs, so every run shares the sample's bytes.
                    run.Inputs.Add(new Tensor(input.Name, input.DataType, (long[])input.Shape.Clone(), TensorBuffer.Wrap(input.Data)));
                }
                run.AskFor(_config.OutputNames);
                var timings = default(ExecutionTimings);
                try
                {
                    instance.Execute(run, ref timings);
                }
                catch (Exception e) when (!(e is OperationCanceledException && cancellationToken.IsCancellationRequested))
                {
                    throw new WarmupException($"warmup '{sample.Name}' failed: {e.Message}", e);
                }
                finally
                {
                    run.DiscardResults();
                    foreach (var input in run.Inputs)
                    {
                        input.Dispose();
                    }
                }
            }
        }
    }

    private static WarmupTensor ResolveInput(
        string what, TensorConfig input, ModelConfigFile.WarmupInputEntry entry, ModelConfig config, int batch, string modelDirectory, Random random, int? tokenVocabulary)
    {
        var about = $"{what}: input '{input.Name}'";
        if (entry is null)
        {
            throw new ModelConfigException($"{about} needs data_type, dims and one of zero_data, random_data, input_data_file");
        }
        if (entry.DataType is null || !DataTypes.TryParse(entry.DataType, out var type))
        {
            throw new ModelConfigException($"{about} has unknown data_type '{entry.DataType}'");
        }
        if (type != input.DataType)
        {
            throw new ModelConfigException($"{about} is {input.DataType.ConfigName()}, not {type.ConfigName()}");
        }
        if (entry.Dims is not { } dims)
        {
            throw new ModelConfigException($"{about} needs dims (without the batch dimension)");
        }
        if (dims.Count != input.Dims.Length || dims.Where((d, i) => d < 0 || (input.Dims[i] >= 0 && input.Dims[i] != d)).Any())
        {
            throw new ModelConfigException(
                $"{about} has dims {TensorShape.Format(dims.ToArray())}, which do not match the input's {TensorShape.Format(input.Dims)} (sizes, not -1)");
        }
        var sources = (entry.ZeroData == true ? 1 : 0) + (entry.RandomData == true ? 1 : 0) + (entry.InputDataFile is null ? 0 : 1);
        if (sources != 1)
        {
            throw new ModelConfigException($"{about} needs exactly one of zero_data: true, random_data: true, input_data_file");
        }
        if (!TensorShape.TryGetElementCount(dims.ToArray(), out var elements) || elements > Array.MaxLength / 8)
        {
            throw new ModelConfigException($"{about} has too many elements");
        }

        byte[] row;
        if (entry.InputDataFile is { } fileName)
        {
            row = ReadFile(about, fileName, type, elements, modelDirectory);
        }
        else if (entry.RandomData == true)
        {
            // A generative model's token ids stay inside the tokenizer's vocabulary, so the embedding lookup can take them.
            var limit = config.Generation is { } generation && generation.InputName == input.Name ? tokenVocabulary ?? generation.LogitsWidth : RandomIntegerLimit;
            row = RandomRow(type, (int)elements, random, limit);
        }
        else
        {
            // Zero elements; a BYTES element is a zero length (an empty string).
            row = new byte[elements * (type == DataType.Bytes ? 4 : type.ElementSize())];
        }

        var rows = config.MaxBatchSize > 0 ? batch : 1;
        if ((long)row.Length * rows > Array.MaxLength)
        {
            throw new ModelConfigException($"{about} is too large with batch_size {batch}");
        }
        // As Triton: the one sample is every row of the batch.
        var data = new byte[row.Length * rows];
        for (var r = 0; r < rows; r++)
        {
            row.CopyTo(data, r * row.Length);
        }
        long[] shape = config.MaxBatchSize > 0 ? [batch, .. dims] : [.. dims];
        return new WarmupTensor(input.Name, type, shape, data);
    }

    private static byte[] ReadFile(string about, string fileName, DataType type, long elements, string modelDirectory)
    {
        if (fileName.Length == 0 || fileName is "." or ".." || fileName.IndexOfAny(['/', '\\', '\0']) >= 0)
        {
            throw new ModelConfigException($"{about}: input_data_file '{fileName}' must be a plain file name in the model's {DataDirectory}/ directory");
        }
        var path = Path.Combine(modelDirectory, DataDirectory, fileName);
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            throw new ModelConfigException($"{about}: input_data_file '{fileName}' is not in the model's {DataDirectory}/ directory");
        }
        if (type != DataType.Bytes)
        {
            var expected = elements * type.ElementSize();
            if (file.Length != expected)
            {
                throw new ModelConfigException(
                    $"{about}: input_data_file '{fileName}' has {file.Length} bytes, but {elements} {type.ConfigName()} elements take {expected}");
            }
            return Read(about, fileName, path);
        }
        if (file.Length > Array.MaxLength)
        {
            throw new ModelConfigException($"{about}: input_data_file '{fileName}' is too large");
        }
        var bytes = Read(about, fileName, path);
        if (!BytesElements.TryCount(bytes, out var found) || found != elements)
        {
            throw new ModelConfigException(
                $"{about}: input_data_file '{fileName}' must hold {elements} strings, each a 4-byte little-endian length and its bytes");
        }
        return bytes;
    }

    private static byte[] Read(string about, string fileName, string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelConfigException($"{about}: input_data_file '{fileName}' cannot be read: {e.GetType().Name}");
        }
    }

    private static byte[] RandomRow(DataType type, int elements, Random random, int integerLimit)
    {
        if (type == DataType.Bytes)
        {
            // Strings of 1 to 8 lower-case ASCII letters: text any string model can take.
            using var stream = new MemoryStream();
            Span<byte> element = stackalloc byte[4 + 8];
            for (var i = 0; i < elements; i++)
            {
                var length = random.Next(1, 9);
                BinaryPrimitives.WriteUInt32LittleEndian(element, (uint)length);
                for (var c = 0; c < length; c++)
                {
                    element[4 + c] = (byte)('a' + random.Next(26));
                }
                stream.Write(element[..(4 + length)]);
            }
            return stream.ToArray();
        }
        var row = new byte[(long)elements * type.ElementSize()];
        var span = row.AsSpan();
        for (var i = 0; i < elements; i++)
        {
            var real = random.NextDouble() * 2 - 1;
            long integer = random.Next(integerLimit);
            switch (type)
            {
                case DataType.Bool:
                    span[i] = (byte)(integer & 1);
                    break;
                case DataType.UInt8 or DataType.Int8:
                    span[i] = (byte)integer;
                    break;
                case DataType.UInt16 or DataType.Int16:
                    MemoryMarshal.Cast<byte, short>(span)[i] = (short)integer;
                    break;
                case DataType.UInt32 or DataType.Int32:
                    MemoryMarshal.Cast<byte, int>(span)[i] = (int)integer;
                    break;
                case DataType.UInt64 or DataType.Int64:
                    MemoryMarshal.Cast<byte, long>(span)[i] = integer;
                    break;
                case DataType.Fp16:
                    MemoryMarshal.Cast<byte, Half>(span)[i] = (Half)real;
                    break;
                case DataType.Bf16:
                    MemoryMarshal.Cast<byte, ushort>(span)[i] = (ushort)(BitConverter.SingleToUInt32Bits((float)real) >> 16);
                    break;
                case DataType.Fp32:
                    MemoryMarshal.Cast<byte, float>(span)[i] = (float)real;
                    break;
                case DataType.Fp64:
                    MemoryMarshal.Cast<byte, double>(span)[i] = real;
                    break;
                default:
                    throw new UnreachableException($"no random data for {type}");
            }
        }
        return row;
    }
}

/// <summary>The engine failed while warming a model up; the message (<c>warmup '&lt;sample&gt;' failed: ...</c>) is the model's reason.</summary>
internal sealed class WarmupException(string message, Exception inner) : Exception(message, inner);
