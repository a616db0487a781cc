using System.Numerics.Tensors;
using System.Security.Cryptography;

namespace InferenceServer.Generation;

/// <summary>
/// Picks each next token of one sequence from the model's logits: greedy argmax, or a temperature-scaled softmax restricted
/// to top-k and then top-p. Owns its random generator, so a seeded sampler always draws the same tokens from the same logits.
/// Not thread-safe: one per sequence.
/// </summary>
public sealed class Sampler
{
    // More partition rounds than this means unlucky pivots; the rest of the range is then sorted (introselect-style).
    private const int MaxSelectRounds = 64;

    private Xoshiro256 _random;
    // Top-k candidate ids and top-p candidates; grown once to the largest size needed and reused by every call.
    private int[] _indices = [];
    private Candidate[] _candidates = [];

    /// <summary>Creates a sampler for one sequence.</summary>
    /// <exception cref="Inference.InferenceException">InvalidArgument when the parameters are out of range.</exception>
    public Sampler(SamplingParameters parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        parameters.Validate();
        Parameters = parameters;
        _random = new Xoshiro256(parameters.Seed ?? RandomSeed());
    }

    /// <summary>The parameters this sampler applies.</summary>
    public SamplingParameters Parameters { get; }

    /// <summary>
    /// The next token id for <paramref name="logits"/> (one per vocabulary entry). <paramref name="scratch"/> must hold at least as
    /// many floats; its contents are overwritten. Allocates nothing once the sampler has seen the vocabulary size.
    /// NaN logits count as impossible tokens.
    /// </summary>
    /// <exception cref="ArgumentException">The logits are empty or the scratch is too small.</exception>
    public int Sample(ReadOnlySpan<float> logits, Span<float> scratch)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("there are no logits to sample from", nameof(logits));
        }
        if (scratch.Length < logits.Length)
        {
            throw new ArgumentException($"the scratch holds {scratch.Length} floats but there are {logits.Length} logits", nameof(scratch));
        }
        if (Parameters.IsGreedy)
        {
            return ArgMax(logits);
        }
        var k = Parameters.TopK;
        return k > 0 && k < logits.Length ? SampleTopK(logits, scratch, k) : SampleAll(logits, scratch[..logits.Length]);
    }

    /// <summary>The index of the largest logit; the lowest index wins ties, NaN never wins (all NaN gives 0).</summary>
    /// <exception cref="ArgumentException">The logits are empty.</exception>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("there are no logits", nameof(logits));
        }
        // The vectorized search returns the first maximum, but prefers NaN and +0 over -0; those rare cases take the scalar loop.
        var index = TensorPrimitives.IndexOfMax(logits);
        var value = logits[index];
        if (!float.IsNaN(value) && value != 0f)
        {
            return index;
        }
        var best = 0;
        var bestValue = float.NegativeInfinity;
        for (var i = 0; i < logits.Length; i++)
        {
            if (logits[i] > bestValue)
            {
                bestValue = logits[i];
                best = i;
            }
        }
        return best;
    }

    // Top-k first: only k exponentials are needed, the k best come out of an O(n log k) heap scan and are then sorted best first.
    private int SampleTopK(ReadOnlySpan<float> logits, Span<float> scratch, int k)
    {
        var candidates = Indices(k);
        for (var i = 0; i < k; i++)
        {
            candidates[i] = i;
        }
        Heapify(candidates, logits);
        var worst = Key(logits, candidates[0]);
        for (var i = k; i < logits.Length; i++)
        {
            // Strictly greater: on a tie the earlier (lower) id already in the heap stays.
            if (logits[i] > worst)
            {
                candidates[0] = i;
                SiftDown(candidates, 0, k, logits);
                worst = Key(logits, candidates[0]);
            }
        }
        for (var end = k - 1; end > 0; end--)
        {
            (candidates[0], candidates[end]) = (candidates[end], candidates[0]);
            SiftDown(candidates, 0, end, logits);
        }
        var max = Key(logits, candidates[0]);
        if (float.IsInfinity(max))
        {
            return ArgMax(logits);
        }
        var scale = 1f / Parameters.Temperature;
        var probabilities = scratch[..k];
        var total = 0.0;
        for (var i = 0; i < k; i++)
        {
            probabilities[i] = MathF.Exp((Key(logits, candidates[i]) - max) * scale);
            total += probabilities[i];
        }
        // Sorted best first, so the nucleus is a prefix.
        var count = k;
        if (Parameters.TopP < 1f)
        {
            var target = Parameters.TopP * total;
            var mass = 0.0;
            for (count = 0; count < k && mass < target;)
            {
                mass += probabilities[count++];
            }
            total = mass;
        }
        var u = _random.NextDouble() * total;
        var cumulative = 0.0;
        for (var i = 0; i < count; i++)
        {
            cumulative += probabilities[i];
            if (u < cumulative)
            {
                return candidates[i];
            }
        }
        return candidates[0];
    }

    // Softmax over the whole vocabulary (vectorized exp and sums), then a direct draw or a nucleus selection.
    private int SampleAll(ReadOnlySpan<float> logits, Span<float> probabilities)
    {
        var max = TensorPrimitives.Max(logits);
        if (float.IsNaN(max))
        {
            max = float.NegativeInfinity;
            foreach (var logit in logits)
            {
                max = logit > max ? logit : max;
            }
        }
        if (float.IsInfinity(max))
        {
            // All impossible, or an infinite logit that must win: either way there is nothing to sample.
            return ArgMax(logits);
        }
        TensorPrimitives.Subtract(logits, max, probabilities);
        TensorPrimitives.Multiply(probabilities, 1f / Parameters.Temperature, probabilities);
        TensorPrimitives.Exp(probabilities, probabilities);
        var total = BlockedSum(probabilities);
        if (double.IsNaN(total))
        {
            // NaN logits: make them impossible rather than poisoning every sum.
            for (var i = 0; i < probabilities.Length; i++)
            {
                probabilities[i] = float.IsNaN(probabilities[i]) ? 0f : probabilities[i];
            }
            total = BlockedSum(probabilities);
        }
        if (Parameters.TopP < 1f)
        {
            return SampleNucleus(probabilities, Parameters.TopP * total);
        }
        // Find the block holding the draw with vectorized block sums (the same ones that made the total), then scan inside it.
        var u = _random.NextDouble() * total;
        var cumulative = 0.0;
        var start = 0;
        for (; start + Block < probabilities.Length; start += Block)
        {
            var block = (double)TensorPrimitives.Sum(probabilities.Slice(start, Block));
            if (u < cumulative + block)
            {
                break;
            }
            cumulative += block;
        }
        var last = start;
        for (var i = start; i < probabilities.Length; i++)
        {
            if (probabilities[i] > 0f)
            {
                cumulative += probabilities[i];
                last = i;
                if (u < cumulative)
                {
                    return i;
                }
            }
        }
        // Only reachable through rounding at the very end of a block.
        return last;
    }

    private const int Block = 4096;

    // Below this fraction of the top token's probability, tokens rarely matter to a nucleus; see SampleNucleus.
    private const float NucleusPrefilter = 1e-4f;

    private static double BlockedSum(ReadOnlySpan<float> values)
    {
        var total = 0.0;
        for (var start = 0; start < values.Length; start += Block)
        {
            total += TensorPrimitives.Sum(values.Slice(start, Math.Min(Block, values.Length - start)));
        }
        return total;
    }

    private int SampleNucleus(ReadOnlySpan<float> probabilities, double target)
    {
        // Peaked distributions put the nucleus among the few tokens within 1e-4 of the top one (the top has probability 1 here,
        // before normalization); selecting among those alone is exact whenever their mass reaches the target, since the
        // nucleus is a prefix of the tokens by probability. Flat distributions fall back to every token with any mass.
        var candidates = Candidates(probabilities.Length);
        var count = Collect(probabilities, candidates, NucleusPrefilter, out var mass);
        if (mass < target)
        {
            count = Collect(probabilities, candidates, float.Epsilon, out _);
        }
        var nucleus = candidates[..SelectNucleus(candidates[..count], target, out mass)];
        var u = _random.NextDouble() * mass;
        var cumulative = 0.0;
        foreach (var candidate in nucleus)
        {
            cumulative += candidate.Probability;
            if (u < cumulative)
            {
                return candidate.Token;
            }
        }
        return nucleus[0].Token;
    }

    private static int Collect(ReadOnlySpan<float> probabilities, Span<Candidate> candidates, float threshold, out double mass)
    {
        var count = 0;
        mass = 0.0;
        for (var i = 0; i < probabilities.Length; i++)
        {
            var p = probabilities[i];
            if (p >= threshold)
            {
                candidates[count++] = new Candidate(p, i);
                mass += p;
            }
        }
        return count;
    }

    /// <summary>
    /// Reorders <paramref name="candidates"/> so its first entries are the smallest set of most probable tokens whose probability
    /// reaches <paramref name="target"/>, and returns how many that is (a quickselect on probability mass, expected O(n)).
    /// </summary>
    private static int SelectNucleus(Span<Candidate> candidates, double target, out double mass)
    {
        int lo = 0, hi = candidates.Length, rounds = 0;
        var need = target;
        var taken = 0.0;
        while (hi - lo > 16 && rounds++ < MaxSelectRounds)
        {
            var pivot = MedianOfThree(candidates[lo].Probability, candidates[(lo + hi) >>> 1].Probability, candidates[hi - 1].Probability);
            // Three-way partition: [lo, lt) above the pivot, [lt, gt) equal, [gt, hi) below, with the masses of the first two.
            int lt = lo, i = lo, gt = hi;
            double greater = 0.0, equal = 0.0;
            while (i < gt)
            {
                var p = candidates[i].Probability;
                if (p > pivot)
                {
                    (candidates[lt], candidates[i]) = (candidates[i], candidates[lt]);
                    greater += p;
                    lt++;
                    i++;
                }
                else if (p < pivot)
                {
                    gt--;
                    (candidates[i], candidates[gt]) = (candidates[gt], candidates[i]);
                }
                else
                {
                    equal += p;
                    i++;
                }
            }
            if (greater >= need)
            {
                hi = lt;
                continue;
            }
            need -= greater;
            taken += greater;
            if (equal >= need)
            {
                // Equal tokens are interchangeable; take just enough of them.
                var j = lt;
                var sum = 0.0;
                while (j < gt && sum < need)
                {
                    sum += candidates[j++].Probability;
                }
                mass = taken + sum;
                return j;
            }
            need -= equal;
            taken += equal;
            lo = gt;
            if (lo >= hi)
            {
                // Rounding left a sliver of mass unclaimed: everything above is the nucleus.
                mass = taken;
                return lo;
            }
        }
        var rest = candidates[lo..hi];
        rest.Sort(MoreProbableFirst);
        var acc = 0.0;
        var n = 0;
        while (n < rest.Length && acc < need)
        {
            acc += rest[n++].Probability;
        }
        mass = taken + acc;
        return lo + Math.Max(n, 1);
    }

    private Span<Candidate> Candidates(int count)
    {
        if (_candidates.Length < count)
        {
            _candidates = new Candidate[count];
        }
        return _candidates.AsSpan(0, count);
    }

    /// <summary>A token and its unnormalized probability, kept together so partitioning reads no other memory.</summary>
    private readonly record struct Candidate(float Probability, int Token);

    // A static method group converts to a cached delegate, so sorting allocates nothing.
    private static int MoreProbableFirst(Candidate a, Candidate b)
    {
        var order = b.Probability.CompareTo(a.Probability);
        return order != 0 ? order : a.Token.CompareTo(b.Token);
    }

    private Span<int> Indices(int count)
    {
        if (_indices.Length < count)
        {
            _indices = new int[count];
        }
        return _indices.AsSpan(0, count);
    }

    private static float MedianOfThree(float a, float b, float c) => Math.Max(Math.Min(a, b), Math.Min(Math.Max(a, b), c));

    private static float Key(ReadOnlySpan<float> keys, int index)
    {
        var value = keys[index];
        return float.IsNaN(value) ? float.NegativeInfinity : value;
    }

    // Heap order: the worst candidate (lowest key, then highest id) at the root, so top-k replaces it and heap sort yields best first.
    private static bool Worse(int a, int b, ReadOnlySpan<float> keys)
    {
        var ka = Key(keys, a);
        var kb = Key(keys, b);
        return ka < kb || (ka == kb && a > b);
    }

    private static void SiftDown(Span<int> heap, int root, int count, ReadOnlySpan<float> keys)
    {
        var item = heap[root];
        while (true)
        {
            var child = 2 * root + 1;
            if (child >= count)
            {
                break;
            }
            if (child + 1 < count && Worse(heap[child + 1], heap[child], keys))
            {
                child++;
            }
            if (!Worse(heap[child], item, keys))
            {
                break;
            }
            heap[root] = heap[child];
            root = child;
        }
        heap[root] = item;
    }

    private static void Heapify(Span<int> heap, ReadOnlySpan<float> keys)
    {
        for (var i = heap.Length / 2 - 1; i >= 0; i--)
        {
            SiftDown(heap, i, heap.Length, keys);
        }
    }

    private static ulong RandomSeed()
    {
        Span<byte> bytes = stackalloc byte[8];
        RandomNumberGenerator.Fill(bytes);
        return BitConverter.ToUInt64(bytes);
    }
}
