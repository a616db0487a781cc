using System.Security.Cryptography;
using Microsoft.Extensions.Primitives;

namespace InferenceServer.Observability;

/// <summary>
/// The request id: the client's (or the mesh's: Envoy and Istio set <c>x-request-id</c>) when it is safe to echo and
/// log, otherwise a fresh one.
/// </summary>
internal static class RequestId
{
    /// <summary>The header that carries the id in both directions.</summary>
    public const string Header = "x-request-id";

    /// <summary>The longest incoming id kept; Envoy's are 36 characters.</summary>
    public const int MaxLength = 128;

    // A random per-process prefix and a counter: unique across pods without a random number per request.
    private static readonly ulong Prefix = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(sizeof(ulong)));
    private static long _counter;

    /// <summary>The incoming id when there is exactly one and it is sane, else a new one.</summary>
    public static string From(StringValues incoming) =>
        incoming.Count == 1 && IsSane(incoming[0]) ? incoming[0]! : New();

    /// <summary>
    /// 1 to <see cref="MaxLength"/> printable ASCII characters without quotes or backslashes: nothing that could break
    /// a log line or a header, whatever format the logs are read in.
    /// </summary>
    public static bool IsSane(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength)
        {
            return false;
        }
        foreach (var c in id)
        {
            if (c is < '!' or > '~' or '"' or '\'' or '\\')
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>32 lowercase hex digits.</summary>
    public static string New()
    {
        var count = (ulong)Interlocked.Increment(ref _counter);
        return string.Create(32, count, static (span, n) =>
        {
            Prefix.TryFormat(span, out _, "x16");
            n.TryFormat(span[16..], out _, "x16");
        });
    }
}
