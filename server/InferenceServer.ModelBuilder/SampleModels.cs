using System.Globalization;
using System.Text;

namespace InferenceServer.ModelBuilder;

/// <summary>
/// The sample model repository served by a fresh clone: <c>simple</c>, <c>linear</c> (versions 1 and 2),
/// <c>string_normalizer</c> and the generative <c>bigram_lm</c>. Layout: <c>&lt;repo&gt;/&lt;model&gt;/&lt;version&gt;/model.onnx</c>, plus
/// <c>&lt;repo&gt;/&lt;model&gt;/config.yaml</c> where a model has one, plus <c>README.md</c>.
/// Everything written is byte-for-byte deterministic.
/// </summary>
public static class SampleModels
{
    /// <summary>Default operator set of the sample models.</summary>
    public const int Opset = 17;

    /// <summary>Name of the model file inside a version directory.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>Name of the <c>simple</c> model.</summary>
    public const string SimpleName = "simple";

    /// <summary>Name of the <c>linear</c> model.</summary>
    public const string LinearName = "linear";

    /// <summary>Name of the <c>string_normalizer</c> model.</summary>
    public const string StringNormalizerName = "string_normalizer";

    /// <summary>Name of the generative <c>bigram_lm</c> model.</summary>
    public const string BigramName = "bigram_lm";

    /// <summary>The character vocabulary of <c>bigram_lm</c> (the tiny-Shakespeare characters; index 0 is the newline).</summary>
    public const string BigramVocabulary = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>The tokens <c>bigram_lm</c> sees per step (its fixed input length).</summary>
    public const int BigramWindow = 16;

    /// <summary>
    /// The text <c>bigram_lm</c>'s next-character table is counted from (written for this project, so the sample is
    /// the project's own).
    /// </summary>
    public const string BigramCorpus =
        "The server wakes before the sun and reads its models from the shelf.\n" +
        "Each request comes in at the door, takes a seat, and waits for the next step.\n" +
        "When the batch is full the engine turns once, and every sequence gains a letter.\n" +
        "Some stop early, some run long; the ones that finish leave, and new ones join.\n" +
        "No one waits for the slowest: the loop goes on, step after step, token after token.\n" +
        "At night the metrics tell the story: how long the first letter took, and the rest.\n" +
        "Then the mesh sends more traffic, the canary sings, and the server answers again.\n";

    /// <summary>The exact contents of <c>bigram_lm/config.yaml</c>.</summary>
    public const string BigramConfigYaml =
        "# A character-level bigram language model: the next character's logits depend on the current one only.\n" +
        "# Served by text generation (OpenAI API, generate, gRPC streaming) with continuous batching.\n" +
        "max_batch_size: 64\n" +
        "generation:\n" +
        "  tokenizer:\n" +
        "    kind: characters\n" +
        "    vocabulary: \"\\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\"\n" +
        "  max_running_sequences: 64\n" +
        "  max_waiting_sequences: 256\n" +
        "  default_max_tokens: 64\n";

    /// <summary>Number of input features of <c>linear</c>.</summary>
    public const int LinearFeatures = 4;

    /// <summary>Number of classes of <c>linear</c>.</summary>
    public const int LinearClasses = 3;

    /// <summary>The versions of <c>linear</c> that are written.</summary>
    public static IReadOnlyList<int> LinearVersions { get; } = [1, 2];

    /// <summary>The exact contents of <c>simple/config.yaml</c>.</summary>
    public const string SimpleConfigYaml =
        "# Triton's \"simple\" example: two INT32 inputs, their sum and difference.\n" +
        "max_batch_size: 8\n" +
        "input:\n" +
        "  - name: INPUT0\n" +
        "    data_type: TYPE_INT32\n" +
        "    dims: [16]\n" +
        "  - name: INPUT1\n" +
        "    data_type: TYPE_INT32\n" +
        "    dims: [16]\n" +
        "output:\n" +
        "  - name: OUTPUT0\n" +
        "    data_type: TYPE_INT32\n" +
        "    dims: [16]\n" +
        "  - name: OUTPUT1\n" +
        "    data_type: TYPE_INT32\n" +
        "    dims: [16]\n" +
        "# Combine concurrent requests into batches of up to 8; a lone request waits at most 100 us for company.\n" +
        "dynamic_batching:\n" +
        "  max_queue_delay_microseconds: 100\n" +
        "# Before the model reports ready, each instance runs this sample twice, so no client request is the engine's first.\n" +
        "model_warmup:\n" +
        "  - name: zeros\n" +
        "    batch_size: 1\n" +
        "    count: 2\n" +
        "    inputs:\n" +
        "      INPUT0: {data_type: TYPE_INT32, dims: [16], zero_data: true}\n" +
        "      INPUT1: {data_type: TYPE_INT32, dims: [16], zero_data: true}\n";

    /// <summary>The exact contents of <c>linear/config.yaml</c>: only the version policy; the rest is derived from the model.</summary>
    public const string LinearConfigYaml =
        "# Only the version policy is configured: inputs, outputs and max_batch_size are derived from the model.\n" +
        "# Serve every version directory (the default serves only the latest).\n" +
        "version_policy:\n" +
        "  all: {}\n";

    /// <summary>The exact contents of <c>string_normalizer/config.yaml</c>: its leading dimension is a list of strings, not a batch.</summary>
    public const string StringNormalizerConfigYaml =
        "# The leading dimension is a list of strings of any length, not a batch of requests:\n" +
        "# without this line the server would derive max_batch_size from the variable leading dimension.\n" +
        "max_batch_size: 0\n";

    /// <summary>
    /// The <c>locale</c> attribute of <c>string_normalizer</c>. ONNX's default, <c>en_US.UTF-8</c>, is
    /// missing from minimal Linux images (ONNX Runtime then refuses to create the session); every glibc
    /// system has <c>C.UTF-8</c>, which still lower-cases non-ASCII letters.
    /// </summary>
    public const string StringNormalizerLocale = "C.UTF-8";

    private static readonly string[] FeatureNames = ["sepal_length", "sepal_width", "petal_length", "petal_width"];
    private static readonly string[] ClassNames = ["setosa", "versicolor", "virginica"];

    // Row-major [features=4, classes=3]; exact binary fractions so expected values are easy to reproduce.
    private static readonly float[] Weights =
    [
        0.5f, 0.25f, -0.75f,
        1.0f, -0.25f, -0.75f,
        -1.5f, 0.25f, 1.25f,
        -1.25f, -0.5f, 1.75f,
    ];

    private static readonly float[] BiasV1 = [0.5f, 1.0f, -1.5f];
    private static readonly float[] BiasV2 = [-0.5f, 1.5f, -1.0f];

    /// <summary>The <c>linear</c> weight matrix, row-major with shape [4 features, 3 classes] (a copy).</summary>
    public static float[] LinearWeights() => (float[])Weights.Clone();

    /// <summary>The 3-element <c>linear</c> bias of <paramref name="version"/> (1 or 2; a copy).</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such version.</exception>
    public static float[] LinearBias(int version) => version switch
    {
        1 => (float[])BiasV1.Clone(),
        2 => (float[])BiasV2.Clone(),
        _ => throw new ArgumentOutOfRangeException(nameof(version), version, "linear has versions 1 and 2."),
    };

    /// <summary>
    /// Reference computation of <c>linear</c>: for a row-major [batch, 4] input returns
    /// logits = features × W + bias and probabilities = softmax(logits) per row, both [batch, 3].
    /// Agrees with ONNX Runtime to float rounding.
    /// </summary>
    /// <exception cref="ArgumentException">The feature count is not a multiple of 4.</exception>
    public static (float[] Logits, float[] Probabilities) ComputeLinear(int version, ReadOnlySpan<float> features)
    {
        if (features.Length % LinearFeatures != 0)
        {
            throw new ArgumentException("Expected a whole number of 4-feature rows.", nameof(features));
        }

        float[] bias = LinearBias(version);
        int batch = features.Length / LinearFeatures;
        var logits = new float[batch * LinearClasses];
        var probabilities = new float[batch * LinearClasses];
        for (int b = 0; b < batch; b++)
        {
            for (int c = 0; c < LinearClasses; c++)
            {
                float sum = 0;
                for (int f = 0; f < LinearFeatures; f++)
                {
                    sum += features[b * LinearFeatures + f] * Weights[f * LinearClasses + c];
                }

                logits[b * LinearClasses + c] = sum + bias[c];
            }

            var row = logits.AsSpan(b * LinearClasses, LinearClasses);
            float max = row[0];
            foreach (float v in row)
            {
                max = MathF.Max(max, v);
            }

            double total = 0;
            for (int c = 0; c < LinearClasses; c++)
            {
                total += Math.Exp(row[c] - max);
            }

            for (int c = 0; c < LinearClasses; c++)
            {
                probabilities[b * LinearClasses + c] = (float)(Math.Exp(row[c] - max) / total);
            }
        }

        return (logits, probabilities);
    }

    /// <summary>
    /// <c>simple</c>: INPUT0, INPUT1 INT32 [batch, 16] → OUTPUT0 = INPUT0 + INPUT1,
    /// OUTPUT1 = INPUT0 − INPUT1, both INT32 [batch, 16].
    /// </summary>
    public static OnnxGraphBuilder Simple() =>
        new OnnxGraphBuilder(SimpleName, Opset)
            .DocString("Triton's \"simple\" example: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1.")
            .Input("INPUT0", TensorElementKind.Int32, "batch", 16)
            .Input("INPUT1", TensorElementKind.Int32, "batch", 16)
            .Node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"])
            .Node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])
            .Output("OUTPUT0", TensorElementKind.Int32, "batch", 16)
            .Output("OUTPUT1", TensorElementKind.Int32, "batch", 16);

    /// <summary>
    /// <c>linear</c>: features FP32 [batch, 4] → Gemm(features, W[4,3], bias[3]) → logits FP32 [batch, 3]
    /// → Softmax(axis=1) → probabilities FP32 [batch, 3].
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">No such version.</exception>
    public static OnnxGraphBuilder Linear(int version) =>
        new OnnxGraphBuilder(LinearName, Opset)
            .DocString(string.Create(CultureInfo.InvariantCulture,
                $"Iris-like linear classifier, version {version}: logits = features x weight + bias; probabilities = softmax(logits, axis=1)."))
            .Input("features", TensorElementKind.Float, "batch", LinearFeatures)
            .Initializer("weight", [LinearFeatures, LinearClasses], LinearWeights())
            .Initializer("bias", [LinearClasses], LinearBias(version))
            .Node("Gemm", ["features", "weight", "bias"], ["logits"])
            .Node("Softmax", ["logits"], ["probabilities"], NodeAttribute.Int("axis", 1))
            .Output("logits", TensorElementKind.Float, "batch", LinearClasses)
            .Output("probabilities", TensorElementKind.Float, "batch", LinearClasses);

    /// <summary>
    /// <c>string_normalizer</c>: text STRING [n] → StringNormalizer(case_change_action=LOWER,
    /// is_case_sensitive=0, no stopwords, locale=<see cref="StringNormalizerLocale"/>) → normalized STRING [n].
    /// </summary>
    public static OnnxGraphBuilder StringNormalizer() =>
        new OnnxGraphBuilder(StringNormalizerName, Opset)
            .DocString("Lower-cases every string of a 1-D STRING tensor (ONNX StringNormalizer).")
            .Input("text", TensorElementKind.String, "n")
            .Node("StringNormalizer", ["text"], ["normalized"],
                NodeAttribute.String("case_change_action", "LOWER"),
                NodeAttribute.Int("is_case_sensitive", 0),
                NodeAttribute.String("locale", StringNormalizerLocale))
            .Output("normalized", TensorElementKind.String, "n");

    /// <summary>
    /// <c>bigram_lm</c>'s table: row <c>a</c> holds the logits of the character after <c>a</c>, the log of its smoothed
    /// frequency in <see cref="BigramCorpus"/> (add-0.01 smoothing, so every character stays possible when sampling).
    /// </summary>
    public static float[] BigramTable()
    {
        var size = BigramVocabulary.Length;
        var counts = new double[size * size];
        for (var i = 0; i + 1 < BigramCorpus.Length; i++)
        {
            var a = BigramVocabulary.IndexOf(BigramCorpus[i], StringComparison.Ordinal);
            var b = BigramVocabulary.IndexOf(BigramCorpus[i + 1], StringComparison.Ordinal);
            if (a >= 0 && b >= 0)
            {
                counts[(a * size) + b]++;
            }
        }
        var table = new float[size * size];
        for (var a = 0; a < size; a++)
        {
            double total = 0;
            for (var b = 0; b < size; b++)
            {
                total += counts[(a * size) + b] + 0.01;
            }
            for (var b = 0; b < size; b++)
            {
                table[(a * size) + b] = (float)Math.Log((counts[(a * size) + b] + 0.01) / total);
            }
        }
        return table;
    }

    /// <summary>
    /// <c>bigram_lm</c>'s greedy continuation after the character <paramref name="last"/>: follow the table's largest
    /// entry (the lowest id on a tie) for <paramref name="tokens"/> characters. The reference the tests check the server against.
    /// </summary>
    public static string BigramGreedy(char last, int tokens)
    {
        var table = BigramTable();
        var size = BigramVocabulary.Length;
        var text = new StringBuilder(tokens);
        var current = BigramVocabulary.IndexOf(last, StringComparison.Ordinal);
        for (var i = 0; i < tokens; i++)
        {
            var row = table.AsSpan(current * size, size);
            var best = 0;
            for (var j = 1; j < size; j++)
            {
                best = row[j] > row[best] ? j : best;
            }
            text.Append(BigramVocabulary[best]);
            current = best;
        }
        return text.ToString();
    }

    /// <summary>
    /// <c>bigram_lm</c>: tokens INT64 [batch, <see cref="BigramWindow"/>] → Gather(table, tokens) → logits FP32
    /// [batch, window, vocabulary]: each position's next-character logits.
    /// </summary>
    public static OnnxGraphBuilder Bigram() =>
        new OnnxGraphBuilder(BigramName, Opset)
            .DocString("Character bigram language model: logits[b, t, :] = table[tokens[b, t], :].")
            .Input("tokens", TensorElementKind.Int64, "batch", BigramWindow)
            .Initializer("table", [BigramVocabulary.Length, BigramVocabulary.Length], BigramTable())
            .Node("Gather", ["table", "tokens"], ["logits"], NodeAttribute.Int("axis", 0))
            .Output("logits", TensorElementKind.Float, "batch", BigramWindow, BigramVocabulary.Length);

    /// <summary>
    /// Writes the sample repository into <paramref name="repositoryDir"/> (created if missing; existing
    /// files are overwritten, others left alone) and returns the paths written, in order.
    /// </summary>
    public static IReadOnlyList<string> WriteAll(string repositoryDir)
    {
        ArgumentException.ThrowIfNullOrEmpty(repositoryDir);
        var written = new List<string>();

        void Model(string name, int version, OnnxGraphBuilder builder)
        {
            string path = Path.Combine(repositoryDir, name, version.ToString(CultureInfo.InvariantCulture), ModelFileName);
            builder.Save(path);
            written.Add(path);
        }

        void Text(string relativePath, string content)
        {
            string path = Path.Combine(repositoryDir, relativePath);
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            File.WriteAllBytes(path, new UTF8Encoding(false).GetBytes(content));
            written.Add(path);
        }

        Model(SimpleName, 1, Simple());
        Text(Path.Combine(SimpleName, "config.yaml"), SimpleConfigYaml);
        foreach (int version in LinearVersions)
        {
            Model(LinearName, version, Linear(version));
        }

        Text(Path.Combine(LinearName, "config.yaml"), LinearConfigYaml);

        Model(StringNormalizerName, 1, StringNormalizer());
        Text(Path.Combine(StringNormalizerName, "config.yaml"), StringNormalizerConfigYaml);
        Model(BigramName, 1, Bigram());
        Text(Path.Combine(BigramName, "config.yaml"), BigramConfigYaml);
        Text("README.md", Readme());
        return written;
    }

    /// <summary>The repository's <c>README.md</c>, generated from the same constants as the models.</summary>
    public static string Readme()
    {
        static string F(float v) => v.ToString("R", CultureInfo.InvariantCulture);

        var sb = new StringBuilder();
        void L(string line = "") => sb.Append(line).Append('\n');

        L("# Sample model repository");
        L();
        L("The models a fresh clone serves. Everything in this directory is generated, byte-for-byte");
        L("deterministically, by");
        L();
        L("```sh");
        L("dotnet run --project server/InferenceServer.ModelBuilder -- --out models");
        L("```");
        L();
        L("(source: `server/InferenceServer.ModelBuilder/SampleModels.cs`); edit that file, not these.");
        L("Layout: `<model>/<version>/model.onnx`, plus `<model>/config.yaml` where a model has one;");
        L("a model without a config has its configuration derived from the ONNX model itself.");
        L(string.Create(CultureInfo.InvariantCulture, $"All models use ONNX opset {Opset} (default domain) and IR version 8."));
        L();
        L("## simple (version 1, with `config.yaml`)");
        L();
        L("Triton's classic `simple` example, so tritonclient's examples run unmodified.");
        L();
        L("| | name | type | shape |");
        L("| --- | --- | --- | --- |");
        L("| input | `INPUT0` | INT32 | [batch, 16] |");
        L("| input | `INPUT1` | INT32 | [batch, 16] |");
        L("| output | `OUTPUT0` | INT32 | [batch, 16] |");
        L("| output | `OUTPUT1` | INT32 | [batch, 16] |");
        L();
        L("`OUTPUT0 = INPUT0 + INPUT1` (ONNX `Add`), `OUTPUT1 = INPUT0 - INPUT1` (ONNX `Sub`), element-wise,");
        L("with int32 wrap-around. `config.yaml` sets `max_batch_size: 8` and per-item dims `[16]`, and a warmup");
        L("(`model_warmup`) of two all-zero executions per instance before the model reports ready.");
        L();
        L("## linear (versions 1 and 2, `config.yaml` with only a version policy)");
        L();
        L("An iris-like linear classifier; the two versions differ only in their bias, to demonstrate");
        L("version routing. Its `config.yaml` sets only `version_policy: {all: {}}` so both versions are");
        L("served; inputs, outputs and `max_batch_size` are derived from the model.");
        L();
        L("| | name | type | shape |");
        L("| --- | --- | --- | --- |");
        L("| input | `features` | FP32 | [batch, 4] |");
        L("| output | `logits` | FP32 | [batch, 3] |");
        L("| output | `probabilities` | FP32 | [batch, 3] |");
        L();
        L("```");
        L("logits        = Gemm(features, weight, bias)  # features[batch,4] x weight[4,3] + bias[3]");
        L("probabilities = Softmax(logits, axis=1)        # each row sums to 1");
        L("```");
        L();
        L("`weight` (initializer, shape [4, 3]; rows are input features, columns output classes):");
        L();
        L("| feature | " + string.Join(" | ", ClassNames) + " |");
        L("| --- |" + string.Concat(Enumerable.Repeat(" --- |", LinearClasses)));
        for (int f = 0; f < LinearFeatures; f++)
        {
            L(string.Create(CultureInfo.InvariantCulture, $"| {f} ({FeatureNames[f]}) | ")
              + string.Join(" | ", Enumerable.Range(0, LinearClasses).Select(c => F(Weights[f * LinearClasses + c]))) + " |");
        }

        L();
        L("`bias` (initializer, shape [3]):");
        L();
        L("| version | " + string.Join(" | ", ClassNames) + " |");
        L("| --- |" + string.Concat(Enumerable.Repeat(" --- |", LinearClasses)));
        foreach (int version in LinearVersions)
        {
            L(string.Create(CultureInfo.InvariantCulture, $"| {version} | ") + string.Join(" | ", LinearBias(version).Select(F)) + " |");
        }

        float[] example = [5.1f, 3.5f, 1.4f, 0.2f];
        L();
        L("Worked example, `features = [" + string.Join(", ", example.Select(F)) + "]`:");
        L();
        L("| version | logits | probabilities |");
        L("| --- | --- | --- |");
        foreach (int version in LinearVersions)
        {
            var (logits, probabilities) = ComputeLinear(version, example);
            L(string.Create(CultureInfo.InvariantCulture, $"| {version} | ")
              + "[" + string.Join(", ", logits.Select(v => v.ToString("0.####", CultureInfo.InvariantCulture))) + "] | "
              + "[" + string.Join(", ", probabilities.Select(v => v.ToString("0.######", CultureInfo.InvariantCulture))) + "] |");
        }

        L();
        L("## string_normalizer (version 1, `config.yaml` with `max_batch_size: 0`)");
        L();
        L("A BYTES (ONNX STRING) model.");
        L();
        L("| | name | type | shape |");
        L("| --- | --- | --- | --- |");
        L("| input | `text` | STRING (BYTES) | [n] |");
        L("| output | `normalized` | STRING (BYTES) | [n] |");
        L();
        L("ONNX `StringNormalizer` with `case_change_action = \"LOWER\"`, `is_case_sensitive = 0` and no");
        L("stopwords: every string is lower-cased, e.g. `[\"Hello\", \"WORLD\"]` -> `[\"hello\", \"world\"]`.");
        L("The operator accepts a 1-D `[C]` or 2-D `[1, C]` input; this model declares 1-D `[n]`, and ONNX Runtime");
        L("rejects an empty input (`n = 0`). The node's `locale` is `C.UTF-8` rather than ONNX's default");
        L("`en_US.UTF-8`, which minimal Linux images lack (ONNX Runtime then refuses to load the model);");
        L("non-ASCII letters are still lower-cased (`\"ÄÖÜ\"` -> `\"äöü\"`).");
        L();
        L("## bigram_lm (version 1, generative, `config.yaml` with a `generation` section)");
        L();
        L("The smallest language model: a character bigram table counted from a few lines of text written for");
        L("this project, so a fresh clone can stream tokens through the OpenAI API, Triton's generate extension and");
        L("gRPC streaming. Greedy decoding soon repeats itself; sample (`temperature` > 0) for livelier text.");
        L();
        L("| | name | type | shape |");
        L("| --- | --- | --- | --- |");
        L(string.Create(CultureInfo.InvariantCulture, $"| input | `tokens` | INT64 | [batch, {BigramWindow}] |"));
        L(string.Create(CultureInfo.InvariantCulture, $"| output | `logits` | FP32 | [batch, {BigramWindow}, {BigramVocabulary.Length}] |"));
        L();
        L("`logits[b, t, :] = table[tokens[b, t], :]` (ONNX `Gather`), where `table[a, c]` is the log of the");
        L("smoothed frequency of character `c` after `a`. The tokenizer is the character vocabulary in `config.yaml`");
        L("(index 0 is the newline). The server feeds the last 16 tokens, left-padded with token 0.");
        return sb.ToString();
    }
}
