using InferenceServer.Mesh.Prometheus;

namespace InferenceServer.Mesh.Canary;

/// <summary>The analysis on Prometheus: each enabled source's request count, error rate and (server) latencies.</summary>
public sealed class PrometheusCanaryAnalyzer(PrometheusClient prometheus, CanaryQueries queries, TimeProvider time) : ICanaryAnalyzer
{
    public async Task<CanaryAnalysis> AnalyseAsync(CanaryAnalysisRequest request, CancellationToken cancellationToken)
    {
        var thresholds = request.Plan.Thresholds;
        var checks = new List<CanaryCheck>();
        try
        {
            if (request.Plan.Sources.Contains(CanaryPlan.ServerSource))
            {
                var measures = new List<(string, double?, double, string)>
                {
                    ("error rate", await QueryAsync(CanaryQueries.ServerErrorRate), thresholds.MaxErrorRate, "ratio"),
                    ("p95 latency", await QueryAsync(CanaryQueries.ServerP95), thresholds.MaxP95Latency.TotalSeconds, "seconds"),
                };
                if (thresholds.MaxTtftP95 is { } ttft)
                {
                    measures.Add(("p95 time to first token", await QueryAsync(CanaryQueries.ServerTtftP95), ttft.TotalSeconds, "seconds"));
                }
                checks.AddRange(CanaryAnalysis.Judge(CanaryPlan.ServerSource, await QueryAsync(CanaryQueries.ServerRequests), thresholds.MinRequests, measures));
            }
            if (request.Plan.Sources.Contains(CanaryPlan.IstioSource))
            {
                checks.AddRange(CanaryAnalysis.Judge(CanaryPlan.IstioSource, await QueryAsync(CanaryQueries.IstioRequests), thresholds.MinRequests,
                    [("error rate", await QueryAsync(CanaryQueries.IstioErrorRate), thresholds.MaxErrorRate, "ratio")]));
            }
            return new CanaryAnalysis(time.GetUtcNow(), checks);
        }
        catch (PrometheusQueryException e)
        {
            return new CanaryAnalysis(time.GetUtcNow(), checks, e.Message);
        }

        Task<double?> QueryAsync(string name) => prometheus.QueryScalarAsync(queries.Render(name, request), cancellationToken);
    }
}
