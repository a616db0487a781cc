using System.Globalization;
using InferenceServer.Admission;
using InferenceServer.Inference;
using Microsoft.Extensions.Primitives;

namespace InferenceServer.Protocol;

/// <summary>
/// Header and parameter names that REST and gRPC share (a REST header is gRPC metadata too, and a gRPC call is an
/// HTTP/2 request with an <see cref="HttpContext"/>), and what the adapters read from them. One place for both
/// adapters, so neither borrows the other's code.
/// </summary>
internal static class RequestMetadata
{
    /// <summary>Names "model/version" that served a request when a fallback model did (the requested model's breaker was open).</summary>
    public const string ServedByModelHeader = "x-served-by-model";

    /// <summary>The response parameter with the same value as <see cref="ServedByModelHeader"/>.</summary>
    public const string ServedByModelParameter = "served_by_model";

    /// <summary>The response parameter naming the model the client asked for, when a fallback served it.</summary>
    public const string FallbackForParameter = "fallback_for";

    /// <summary>The <c>x-ratelimit-*</c> headers (REST) and trailers (gRPC) of a rate-limit rejection.</summary>
    public const string LimitHeader = "x-ratelimit-limit";

    /// <inheritdoc cref="LimitHeader"/>
    public const string RemainingHeader = "x-ratelimit-remaining";

    /// <inheritdoc cref="LimitHeader"/>
    public const string ResetHeader = "x-ratelimit-reset";

    /// <summary>The tenant a request names in the configured header (REST header or gRPC metadata); null when absent.</summary>
    public static string? TenantOf(HttpContext context)
    {
        var admission = context.RequestServices.GetService<AdmissionController>();
        if (admission is null)
        {
            return null;
        }
        var value = context.Request.Headers[admission.TenantHeader];
        return StringValues.IsNullOrEmpty(value) ? null : value[0];
    }

    /// <summary>Sets the <c>x-ratelimit-*</c> headers of a rejection.</summary>
    public static void WriteRateLimitHeaders(IHeaderDictionary headers, RateLimitInfo limit)
    {
        headers[LimitHeader] = limit.Limit.ToString(CultureInfo.InvariantCulture);
        headers[RemainingHeader] = limit.Remaining.ToString(CultureInfo.InvariantCulture);
        headers[ResetHeader] = limit.ResetSeconds.ToString(CultureInfo.InvariantCulture);
    }
}
