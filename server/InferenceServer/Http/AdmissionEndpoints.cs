using System.Globalization;
using System.Text.Json;
using InferenceServer.Admission;
using InferenceServer.Inference;
using Microsoft.Extensions.Primitives;

namespace InferenceServer.Http;

/// <summary>
/// The HTTP side of admission control: the run-time limits API on the admin port (<c>/v2/admin/limits</c>). The tenant
/// header and the <c>x-ratelimit-*</c> headers both adapters use are in <see cref="Protocol.RequestMetadata"/>.
/// </summary>
internal static class AdmissionEndpoints
{
    public const string Path = "/v2/admin";

    private static readonly string[] Fields = ["requests_per_second", "burst", "tenant_requests_per_second", "tenant_burst", "max_concurrency", "queue_length", "tokens_per_minute", "token_burst"];

    public static IEndpointRouteBuilder MapAdmissionAdmin(this IEndpointRouteBuilder app)
    {
        app.MapGet(Path + "/limits", context =>
        {
            var admission = context.RequestServices.GetRequiredService<AdmissionController>();
            return JsonResponse.WriteAsync(context, 200, admission, WriteLimits);
        });
        app.MapGet(Path + "/limits/{model}", context =>
        {
            var admission = context.RequestServices.GetRequiredService<AdmissionController>();
            var model = (string)context.GetRouteValue("model")!;
            return JsonResponse.WriteAsync(context, 200, (admission, model), static (w, s) =>
            {
                w.WriteStartObject();
                w.WriteString("model", s.model);
                w.WritePropertyName("limits");
                WriteLimits(w, s.admission.LimitsOf(s.model));
                w.WriteNumber("tenants_tracked", s.admission.TenantCount(s.model));
                w.WriteEndObject();
            });
        });
        // PUT replaces the default limits, or a model's override; fields left out are unlimited (default) or inherited (model).
        app.MapPut(Path + "/limits", async context =>
        {
            var admission = context.RequestServices.GetRequiredService<AdmissionController>();
            admission.SetDefault(await ReadLimitsAsync(context));
            await JsonResponse.WriteAsync(context, 200, admission, WriteLimits);
        });
        app.MapPut(Path + "/limits/{model}", async context =>
        {
            var admission = context.RequestServices.GetRequiredService<AdmissionController>();
            admission.SetModel((string)context.GetRouteValue("model")!, await ReadLimitsAsync(context));
            await JsonResponse.WriteAsync(context, 200, admission, WriteLimits);
        });
        app.MapDelete(Path + "/limits/{model}", context =>
        {
            var admission = context.RequestServices.GetRequiredService<AdmissionController>();
            admission.SetModel((string)context.GetRouteValue("model")!, null);
            return JsonResponse.WriteAsync(context, 200, admission, WriteLimits);
        });
        return app;
    }

    private static void WriteLimits(Utf8JsonWriter w, AdmissionController admission)
    {
        w.WriteStartObject();
        w.WriteString("tenant_header", admission.TenantHeader);
        w.WriteNumber("max_tenants", admission.MaxTenants);
        w.WritePropertyName("default");
        WriteLimits(w, admission.Default);
        w.WriteStartObject("models");
        foreach (var (model, limits) in admission.Overrides.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            w.WritePropertyName(model);
            WriteLimits(w, limits);
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteLimits(Utf8JsonWriter w, AdmissionLimits limits)
    {
        w.WriteStartObject();
        WriteOptional(w, Fields[0], limits.RequestsPerSecond);
        WriteOptional(w, Fields[1], limits.Burst);
        WriteOptional(w, Fields[2], limits.TenantRequestsPerSecond);
        WriteOptional(w, Fields[3], limits.TenantBurst);
        WriteOptional(w, Fields[4], limits.MaxConcurrency);
        WriteOptional(w, Fields[5], limits.QueueLength);
        WriteOptional(w, Fields[6], limits.TokensPerMinute);
        WriteOptional(w, Fields[7], limits.TokenBurst);
        w.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter w, string name, double? value)
    {
        if (value is { } v)
        {
            w.WriteNumber(name, v);
        }
    }

    /// <summary>Reads a limits object; anything else is a 400 that names the offending field.</summary>
    private static async Task<AdmissionLimits> ReadLimitsAsync(HttpContext context)
    {
        using var body = await RequestBody.ReadAsync(context.Request, context.RequestAborted);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.Memory);
        }
        catch (JsonException e)
        {
            throw InferenceException.InvalidArgument("malformed JSON: " + e.Message);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw InferenceException.InvalidArgument($"the limits must be a JSON object with any of: {string.Join(", ", Fields)}");
            }
            double? rate = null, tenantRate = null, tokensPerMinute = null;
            int? burst = null, tenantBurst = null, concurrency = null, queue = null;
            long? tokenBurst = null;
            foreach (var property in document.RootElement.EnumerateObject())
            {
                switch (property.Name)
                {
                    case "requests_per_second": rate = Number(property); break;
                    case "burst": burst = Integer(property); break;
                    case "tenant_requests_per_second": tenantRate = Number(property); break;
                    case "tenant_burst": tenantBurst = Integer(property); break;
                    case "max_concurrency": concurrency = Integer(property); break;
                    case "queue_length": queue = Integer(property); break;
                    case "tokens_per_minute": tokensPerMinute = Number(property); break;
                    case "token_burst": tokenBurst = Integer(property); break;
                    default:
                        throw InferenceException.InvalidArgument($"unknown field '{property.Name}'; the limits are: {string.Join(", ", Fields)}");
                }
            }
            var limits = new AdmissionLimits
            {
                RequestsPerSecond = rate,
                Burst = burst,
                TenantRequestsPerSecond = tenantRate,
                TenantBurst = tenantBurst,
                MaxConcurrency = concurrency,
                QueueLength = queue,
                TokensPerMinute = tokensPerMinute,
                TokenBurst = tokenBurst,
            };
            try
            {
                limits.Validate("limits");
            }
            catch (ArgumentException e)
            {
                throw InferenceException.InvalidArgument(e.Message);
            }
            return limits;
        }
    }

    private static double? Number(JsonProperty property) => property.Value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.Number => property.Value.GetDouble(),
        _ => throw InferenceException.InvalidArgument($"'{property.Name}' must be a number or null"),
    };

    private static int? Integer(JsonProperty property) => property.Value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.Number when property.Value.TryGetInt32(out var value) => value,
        _ => throw InferenceException.InvalidArgument($"'{property.Name}' must be an integer or null"),
    };
}
