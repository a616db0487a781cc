namespace InferenceServer.Mesh.RateLimits;

/// <summary>One subset's traffic weight, ready pods, and each model's per-pod share (null: nothing assigned).</summary>
public sealed record SubsetPlan(string Subset, int Weight, int Ready, IReadOnlyDictionary<string, PodShare?> Shares)
{
    /// <summary>The pod's whole bucket when the sidecar has one bucket for every model: the sum of the models' shares,
    /// or null when some model has nothing assigned here.</summary>
    public PodShare? Combined => Shares.Values.Any(s => s is null) || Shares.Count == 0
        ? null
        : new PodShare(Shares.Values.Sum(s => s!.RequestsPerSecond), Shares.Values.Sum(s => s!.Burst));
}

/// <summary>The per-pod limits of every budget for a <see cref="MeshState"/>.</summary>
public sealed record RateLimitPlan(IReadOnlyList<SubsetPlan> Subsets, IReadOnlyList<ReadyPod> Pods, IReadOnlyList<ModelBudget> Budgets)
{
    public static RateLimitPlan Compute(MeshState state, IReadOnlyList<ModelBudget> budgets, double burstFactor = 1)
    {
        var subsets = state.Weights.Select(w =>
        {
            var ready = state.ReadyIn(w.Key);
            var shares = budgets.ToDictionary(b => b.Model, b => RateLimitShares.PerPod(b.RequestsPerSecond, w.Value, ready, burstFactor), StringComparer.Ordinal);
            return new SubsetPlan(w.Key, w.Value, ready, shares);
        }).ToList();
        return new RateLimitPlan(subsets, state.Pods, budgets);
    }

    public SubsetPlan? SubsetOf(string subset) => Subsets.FirstOrDefault(s => s.Subset == subset);

    /// <summary>The share of <paramref name="model"/> for a pod of <paramref name="subset"/>; null when none is assigned.</summary>
    public PodShare? ShareOf(string subset, string model) => SubsetOf(subset)?.Shares.GetValueOrDefault(model);

    /// <summary>One line per budget: <c>simple=100 rps: v1 90% x 3 ready -> 30 rps (burst 30) each; v2 10% x 1 ready -> ...</c>.</summary>
    public IEnumerable<string> Describe() => Budgets.Select(b =>
        $"{b.Model}={b.RequestsPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture)} rps: " + string.Join("; ", Subsets.Select(s =>
            $"{s.Subset} {s.Weight}% x {s.Ready} ready -> " + (s.Shares[b.Model] is { } share ? $"{share} each" : "nothing assigned (limits left as they are)"))));
}
