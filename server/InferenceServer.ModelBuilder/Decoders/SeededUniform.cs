namespace InferenceServer.ModelBuilder.Decoders;

/// <summary>
/// A small deterministic random generator (SplitMix64) for weights: the numbers depend only on the seed and the
/// stream's name, never on the runtime, so a model's bytes are the same on every machine.
/// </summary>
public sealed class SeededUniform
{
    private ulong _state;

    /// <summary>Starts the stream named <paramref name="stream"/> of seed <paramref name="seed"/>.</summary>
    public SeededUniform(ulong seed, string stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        // FNV-1a over the UTF-16 code units of the name, mixed with the seed.
        ulong hash = 14695981039346656037UL;
        foreach (char c in stream)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        _state = seed ^ hash;
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        unchecked
        {
            ulong z = _state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }
    }

    /// <summary>A number uniform in [−1, 1).</summary>
    public double NextSigned() => (NextUInt64() >> 11) * (2.0 / (1UL << 53)) - 1.0;

    /// <summary>
    /// <paramref name="count"/> numbers uniform around <paramref name="mean"/> with standard deviation
    /// <paramref name="std"/> (the interval <c>mean ± √3·std</c>).
    /// </summary>
    public float[] Fill(int count, double mean, double std)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var values = new float[count];
        double halfWidth = Math.Sqrt(3.0) * std;
        for (int i = 0; i < count; i++)
        {
            values[i] = (float)(mean + halfWidth * NextSigned());
        }

        return values;
    }
}
