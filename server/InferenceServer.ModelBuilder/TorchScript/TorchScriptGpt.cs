using System.Text.RegularExpressions;
using InferenceServer.ModelBuilder.Decoders;

namespace InferenceServer.ModelBuilder.TorchScript;

/// <summary>A linear layer as the graph uses it: the weight transposed to <c>[in, out]</c> for MatMul, and its bias if it has one.</summary>
/// <param name="Weight">The weight, <c>[in, out]</c>, named after the TorchScript parameter.</param>
/// <param name="Bias">The bias, <c>[out]</c>, or null.</param>
public sealed record GptLinear(DecoderTensor Weight, DecoderTensor? Bias);

/// <summary>A LayerNorm over the last axis: <c>(x − mean) / √(var + eps) · Weight + Bias</c>.</summary>
/// <param name="Weight">The scale, <c>[width]</c>.</param>
/// <param name="Bias">The shift, <c>[width]</c>.</param>
public sealed record GptLayerNorm(DecoderTensor Weight, DecoderTensor Bias);

/// <summary>
/// One block, computing (as the archive's <c>Block.forward</c> does, which is not GPT-2's pre-norm block):
/// <c>a = Ln1(x)</c>; <c>b = a + Attention(a)</c>; <c>out = Mlp(b) + Ln2(b)</c>, where <c>Attention</c> is causal
/// multi-head self-attention with the queries, keys and values of one projection and no output projection, and
/// <c>Mlp(b) = Proj(gelu(Fc(b)))</c>.
/// </summary>
/// <param name="Name">The block's attribute name in the archive, e.g. <c>block1</c>.</param>
/// <param name="Ln1">The norm before attention.</param>
/// <param name="Qkv">The query/key/value projection, <c>[width, 3·width]</c>: queries, then keys, then values, each head after head.</param>
/// <param name="Ln2">The norm added to the MLP's output.</param>
/// <param name="Fc">The MLP's first projection, <c>[width, inner]</c>.</param>
/// <param name="Proj">The MLP's second projection, <c>[inner, width]</c>.</param>
public sealed record GptBlock(string Name, GptLayerNorm Ln1, GptLinear Qkv, GptLayerNorm Ln2, GptLinear Fc, GptLinear Proj);

/// <summary>
/// The weights and shape of a character-level GPT saved as TorchScript, as in <c>shakespeare.pt.zip</c> (the
/// <c>__torch__.llm.LanguageModel</c> of TorchSharp's examples): a <c>Sequential</c> of an embedding (token table plus
/// a learned position table read through its <c>positions</c> buffer), blocks (<see cref="GptBlock"/>) and a linear
/// de-embedding to the vocabulary's logits (no final norm). Read from the archive without running it
/// (<see cref="TorchScriptArchive"/>); the numbers the forward code fixes rather than stores (the LayerNorms' eps, the
/// GELU's form) come from the archive's TorchScript source, and <see cref="Read"/> refuses an archive whose forward
/// code differs from the one this class describes.
/// </summary>
public sealed class TorchScriptGpt
{
    /// <summary>The statements of the forward methods this class's description rests on (whitespace aside), by class.</summary>
    private static readonly (string Class, string[] Statements)[] ExpectedForward =
    [
        ("__torch__.llm.EmbeddingModel", ["tok_emb0 = (tok_emb).forward(input, )", "pos_emb0 = (pos_emb).forward(positions, )", "return torch.add(tok_emb0, pos_emb0)"]),
        ("__torch__.llm.Block", ["xs0 = (ln1).forward(xs, )", "attn0 = (attn).forward(xs0, )", "xs1 = torch.add(xs0, attn0)", "ln20 = (ln2).forward(xs1, )", "xs2 = (mlp).forward(xs1, )", "return torch.add(xs2, ln20)"]),
        ("__torch__.llm.CausalSelfAttention", ["q, k, v, = torch.split(_3, nHeads1, 1)", "y = torch.scaled_dot_product_attention(q, k, v, None, dropout, True)", "return (resid_dropout).forward(y0, )"]),
    ];

    private TorchScriptGpt(
        string className, int heads, float layerNormEps, DecoderTensor tokenEmbedding, DecoderTensor positionEmbedding,
        IReadOnlyList<GptBlock> blocks, GptLinear lmHead, bool tiedEmbeddings)
    {
        ClassName = className;
        Heads = heads;
        LayerNormEps = layerNormEps;
        TokenEmbedding = tokenEmbedding;
        PositionEmbedding = positionEmbedding;
        Blocks = blocks;
        LmHead = lmHead;
        TiedEmbeddings = tiedEmbeddings;
    }

    /// <summary>The archive's top-level class, e.g. <c>__torch__.llm.LanguageModel</c>.</summary>
    public string ClassName { get; }

    /// <summary>Attention heads of every block.</summary>
    public int Heads { get; }

    /// <summary>The epsilon of every LayerNorm.</summary>
    public float LayerNormEps { get; }

    /// <summary>The token table, <c>[vocab, width]</c>.</summary>
    public DecoderTensor TokenEmbedding { get; }

    /// <summary>
    /// The position table, <c>[context, width]</c>: row <c>p</c> is the one the archive adds to the token at column
    /// <c>p</c> of its window (its <c>pos_emb</c> row <c>positions[p]</c>).
    /// </summary>
    public DecoderTensor PositionEmbedding { get; }

    /// <summary>The blocks, in the order the <c>Sequential</c> calls them.</summary>
    public IReadOnlyList<GptBlock> Blocks { get; }

    /// <summary>The de-embedding to logits, <c>[width, vocab]</c>.</summary>
    public GptLinear LmHead { get; }

    /// <summary>Whether the de-embedding's weight is the token table itself (one storage in the archive).</summary>
    public bool TiedEmbeddings { get; }

    /// <summary>Rows of the token table, columns of the logits.</summary>
    public int Vocab => checked((int)TokenEmbedding.Dims[0]);

    /// <summary>Width of the residual stream.</summary>
    public int Width => checked((int)TokenEmbedding.Dims[1]);

    /// <summary>The context: rows of the position table (the archive's fixed window).</summary>
    public int Context => checked((int)PositionEmbedding.Dims[0]);

    /// <summary>Width of one head.</summary>
    public int HeadDim => Width / Heads;

    /// <summary>Width of the MLP.</summary>
    public int Inner => checked((int)Blocks[0].Fc.Weight.Dims[1]);

    /// <summary>The shapes of the Optimum interface of the exported graph (FLOAT, one KV head per attention head).</summary>
    public OptimumDecoderShape Shape => new(Blocks.Count, Heads, HeadDim, Vocab, DecoderPrecision.Float32);

    /// <summary>Reads the model from the TorchScript archive at <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">The file is not a TorchScript archive of this model family.</exception>
    public static TorchScriptGpt Load(string path)
    {
        var archive = TorchScriptArchive.Open(path);
        try
        {
            return Read(archive);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}': {e.Message}", e);
        }
    }

    /// <summary>Reads the model from <paramref name="archive"/>.</summary>
    /// <exception cref="InvalidDataException">The archive holds another architecture, or numbers that do not fit together.</exception>
    public static TorchScriptGpt Read(TorchScriptArchive archive)
    {
        ArgumentNullException.ThrowIfNull(archive);
        var root = archive.Root;
        Require(root.ShortClassName == "LanguageModel", $"the top-level module is {root.ClassName}, not an llm.LanguageModel");
        foreach (var (className, statements) in ExpectedForward)
        {
            string source = Normalize(archive.ClassSource(className));
            foreach (string statement in statements)
            {
                Require(source.Contains(Normalize(statement), StringComparison.Ordinal), $"{className}.forward does not contain '{statement}'");
            }
        }

        var layers = root.Module("layers");
        var children = layers.AttributeNames.Where(n => layers.Attributes[n] is TorchScriptObject).Select(layers.Module).ToList();
        Require(children.Count >= 3 && children[0].ShortClassName == "EmbeddingModel" && children[^1].ShortClassName == "Linear"
                && children[1..^1].All(c => c.ShortClassName == "Block"),
            "'layers' is not a Sequential of an EmbeddingModel, Blocks and a Linear");
        string[] names = layers.AttributeNames.Where(n => layers.Attributes[n] is TorchScriptObject).ToArray();

        var embed = children[0];
        var tokenTensor = embed.Module("tok_emb").Tensor("weight");
        var tokens = Matrix(tokenTensor, $"layers.{names[0]}.tok_emb.weight");
        int width = checked((int)tokens.Dims[1]);
        var positions = PositionTable(embed, width, $"layers.{names[0]}.pos_emb.weight");

        var blocks = new List<GptBlock>();
        int heads = 0;
        var eps = new HashSet<double>();
        for (int i = 1; i < children.Count - 1; i++)
        {
            var block = children[i];
            string prefix = $"layers.{names[i]}";
            var attention = block.Module("attn");
            int blockHeads = checked((int)attention.Int("nHeads"));
            Require(blockHeads > 0 && width % blockHeads == 0, $"{prefix}: {blockHeads} heads do not divide the width {width}");
            Require(heads == 0 || heads == blockHeads, $"{prefix} has {blockHeads} heads, another block {heads}");
            heads = blockHeads;
            // scaled_dot_product_attention applies its dropout argument whether or not the module is in training mode.
            Require(attention.Float("dropout") == 0, $"{prefix}.attn drops out attention weights ({attention.Float("dropout")})");

            var mlp = block.Module("mlp").Module("net");
            Require(mlp.AttributeNames.Where(n => mlp.Attributes[n] is TorchScriptObject).SequenceEqual(["c_fc", "gelu", "c_proj", "dropout"]),
                $"{prefix}.mlp.net is not c_fc, gelu, c_proj, dropout");
            string approximate = archive.FinalConstant(mlp.Module("gelu").ClassName, "approximate");
            Require(approximate == "\"none\"", $"{prefix}'s GELU is approximate={approximate}; only the exact (erf) GELU is exported");

            var ln1 = Norm(archive, block.Module("ln1"), width, prefix + ".ln1", eps);
            var ln2 = Norm(archive, block.Module("ln2"), width, prefix + ".ln2", eps);
            var qkv = Linear(attention.Module("c_attn"), width, 3 * width, prefix + ".attn.c_attn");
            var fc = Linear(mlp.Module("c_fc"), width, null, prefix + ".mlp.net.c_fc");
            var proj = Linear(mlp.Module("c_proj"), (int)fc.Weight.Dims[1], width, prefix + ".mlp.net.c_proj");
            blocks.Add(new GptBlock(names[i], ln1, qkv, ln2, fc, proj));
        }

        Require(eps.Count == 1, $"the LayerNorms' eps differ ({string.Join(", ", eps)})");
        var lmHead = Linear(children[^1], width, tokens.Dims[0], $"layers.{names[^1]}");
        bool tied = children[^1].Tensor("weight").StorageKey == tokenTensor.StorageKey;
        return new TorchScriptGpt(root.ClassName, heads, (float)eps.Single(), tokens, positions, blocks, lmHead, tied);
    }

    /// <summary>Row <c>p</c> of the table is <c>pos_emb.weight[positions[p]]</c>: the archive embeds column <c>p</c> of its window with it.</summary>
    private static DecoderTensor PositionTable(TorchScriptObject embed, int width, string name)
    {
        var table = Matrix(embed.Module("pos_emb").Tensor("weight"), name);
        Require(table.Dims[1] == width, $"{name} is {table.Dims[1]} wide, the token table {width}");
        var index = embed.Tensor("positions");
        Require(index.Shape.Length == 1, "the positions buffer is not a vector");
        long[] rows = index.ToInt64s();
        var values = new float[rows.Length * width];
        for (int p = 0; p < rows.Length; p++)
        {
            Require(rows[p] >= 0 && rows[p] < table.Dims[0], $"positions[{p}] = {rows[p]} is outside {name}'s {table.Dims[0]} rows");
            Array.Copy(table.Values, rows[p] * width, values, (long)p * width, width);
        }

        return new DecoderTensor(name, [rows.Length, width], values);
    }

    private static GptLayerNorm Norm(TorchScriptArchive archive, TorchScriptObject norm, int width, string name, HashSet<double> eps)
    {
        Require(norm.ShortClassName == "LayerNorm", $"{name} is a {norm.ClassName}, not a LayerNorm");
        eps.Add(archive.FinalFloat(norm.ClassName, "eps"));
        return new GptLayerNorm(Vector(norm.Tensor("weight"), width, name + ".weight"), Vector(norm.Tensor("bias"), width, name + ".bias"));
    }

    /// <summary>A Linear's weight <c>[out, in]</c> transposed to <c>[in, out]</c>, and its bias.</summary>
    private static GptLinear Linear(TorchScriptObject linear, long inputs, long? outputs, string name)
    {
        Require(linear.ShortClassName == "Linear", $"{name} is a {linear.ClassName}, not a Linear");
        var weight = linear.Tensor("weight");
        Require(weight.Shape.Length == 2 && weight.Shape[1] == inputs && (outputs is null || weight.Shape[0] == outputs),
            $"{name}.weight is [{string.Join(", ", weight.Shape)}], not [{outputs?.ToString() ?? "n"}, {inputs}]");
        int rows = checked((int)weight.Shape[0]);
        int columns = checked((int)weight.Shape[1]);
        float[] values = weight.ToFloats();
        var transposed = new float[values.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                transposed[c * rows + r] = values[r * columns + c];
            }
        }

        var bias = linear.HasTensor("bias") ? Vector(linear.Tensor("bias"), rows, name + ".bias") : null;
        return new GptLinear(new DecoderTensor(name + ".weight", [columns, rows], transposed), bias);
    }

    private static DecoderTensor Matrix(TorchScriptTensor tensor, string name)
    {
        Require(tensor.Shape.Length == 2, $"{name} is not a matrix");
        return new DecoderTensor(name, (long[])tensor.Shape.Clone(), tensor.ToFloats());
    }

    private static DecoderTensor Vector(TorchScriptTensor tensor, int length, string name)
    {
        Require(tensor.Shape is [var n] && n == length, $"{name} is [{string.Join(", ", tensor.Shape)}], not [{length}]");
        return new DecoderTensor(name, [length], tensor.ToFloats());
    }

    private static string Normalize(string code) => Regex.Replace(code, @"\s+", " ");

    private static void Require(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidDataException($"Not the character-level GPT this exporter reads: {what}.");
        }
    }
}
