namespace InferenceServer.Backends;

/// <summary>The device names of model configuration: "cpu", "cuda" or "cuda:N".</summary>
public static class DeviceName
{
    /// <summary>Whether <paramref name="device"/> names a CUDA device, and which (0 for plain "cuda").</summary>
    public static bool IsCuda(string device, out int id)
    {
        id = 0;
        var d = device.AsSpan().Trim();
        if (d.Equals("cuda", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        return d.StartsWith("cuda:", StringComparison.OrdinalIgnoreCase) && int.TryParse(d[5..], out id) && id >= 0;
    }

    /// <summary>Whether <paramref name="device"/> is the CPU.</summary>
    public static bool IsCpu(string device) => device.AsSpan().Trim().Equals("cpu", StringComparison.OrdinalIgnoreCase);
}
