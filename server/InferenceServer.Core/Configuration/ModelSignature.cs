namespace InferenceServer.Configuration;

/// <summary>
/// A model's inputs and outputs as the model itself declares them (full dimensions, -1 where variable): what an engine
/// reads from the graph, the lowest-precedence source of a configuration.
/// </summary>
public sealed record ModelSignature(IReadOnlyList<TensorConfig> Inputs, IReadOnlyList<TensorConfig> Outputs);
