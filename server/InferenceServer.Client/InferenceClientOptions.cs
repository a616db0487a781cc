namespace InferenceServer.Client;

/// <summary>How the REST client sends tensors.</summary>
public enum HttpTensorEncoding
{
    /// <summary>JSON for small tensors, the binary data extension for large ones (and for BF16, which JSON cannot carry).</summary>
    Auto,
    /// <summary>JSON (BF16 inputs still go binary; BF16 outputs always come back binary).</summary>
    Json,
    /// <summary>The binary data extension for every input and output.</summary>
    Binary,
}

/// <summary>Settings of a client (both protocols).</summary>
public sealed class InferenceClientOptions
{
    /// <summary>The deadline of every call that does not give its own; null for none.</summary>
    public TimeSpan? DefaultTimeout { get; init; }

    /// <summary>Retries on overload and unavailability; <see cref="RetryPolicy.None"/> to turn them off.</summary>
    public RetryPolicy Retry { get; init; } = RetryPolicy.Default;

    /// <summary>The header (gRPC metadata key) that carries the tenant.</summary>
    public string TenantHeader { get; init; } = "x-tenant-id";

    /// <summary>The tenant sent with every call that does not give its own; null for none.</summary>
    public string? Tenant { get; init; }

    /// <summary>The clock of deadlines and retry waits (tests inject a fake one).</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>REST only: how tensors are encoded.</summary>
    public HttpTensorEncoding HttpEncoding { get; init; } = HttpTensorEncoding.Auto;

    /// <summary>REST only, <see cref="HttpTensorEncoding.Auto"/>: inputs of at least this many bytes go binary.</summary>
    public int BinaryThresholdBytes { get; init; } = 16 * 1024;

    /// <summary>The source of retry jitter (null: a shared random source).</summary>
    public Random? Random { get; init; }
}

/// <summary>Per-call settings.</summary>
public sealed class CallSettings
{
    /// <summary>This call's deadline, counted from the call's start and covering every retry; null for the client's default.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Sent as <c>x-request-id</c> (the server logs and echoes it).</summary>
    public string? RequestId { get; init; }

    /// <summary>The tenant of this call, over the client's default.</summary>
    public string? Tenant { get; init; }

    /// <summary>Extra headers (gRPC: metadata entries) for this call.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();
}
