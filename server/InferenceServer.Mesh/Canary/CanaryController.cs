using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using InferenceServer.Mesh.Kubernetes;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace InferenceServer.Mesh.Canary;

/// <summary>How a rollout (or a meshctl command on it) ended.</summary>
public enum CanaryResult
{
    /// <summary>Every step passed; the canary has 100 %.</summary>
    Succeeded,

    /// <summary>Promoted by hand; the canary has 100 %.</summary>
    Promoted,

    /// <summary>Rolled back by the analysis; the stable subset has 100 %.</summary>
    Failed,

    /// <summary>Aborted by hand; the stable subset has 100 %.</summary>
    Aborted,

    /// <summary>Someone else changed the weights; meshctl stopped and left them alone.</summary>
    Halted,

    /// <summary>Dry run: the patches were printed, nothing was sent.</summary>
    DryRun,
}

/// <summary>The rollout cannot go on for a reason the operator must resolve (message says what).</summary>
public sealed class CanaryException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Moves a VirtualService's split from the stable to the canary subset, step by step, with analysis between steps, and
/// keeps the rollout's state in the VirtualService annotation <see cref="CanaryState.AnnotationKey"/>. Every write is a
/// server-side apply (field manager <see cref="IstioApi.FieldManager"/>, force) of the annotation and the whole <c>spec.http</c>
/// (Istio's CRD lists are atomic), carrying the resourceVersion it was computed from, so a concurrent change answers
/// 409 Conflict and is re-read (bounded retries). Before each write, the split weights must still be the ones meshctl
/// last set: if someone else changed them, the rollout halts without touching them.
/// </summary>
public sealed class CanaryController(IKubernetes kubernetes, CanaryTarget target, ICanaryAnalyzer analyzer, TimeProvider time, TextWriter log, bool dryRun = false)
{
    /// <summary>The field manager of every write.</summary>

    private const int MaxAttempts = 5;

    private readonly VirtualServiceSplit _split = new(target.Host, target.Stable, target.Canary);

    /// <summary>
    /// Starts a rollout with <paramref name="plan"/> and runs it to its end. When the annotation holds a rollout of the
    /// same two subsets still progressing (a restarted meshctl, a Job retried), it resumes that one at its recorded step
    /// with its recorded plan instead; a halted rollout must be resumed, promoted or aborted explicitly.
    /// </summary>
    public async Task<CanaryResult> StartAsync(CanaryPlan plan, CancellationToken cancellationToken)
    {
        var vs = await ReadAsync(cancellationToken);
        var weights = _split.Read(vs);
        if (StateOf(vs) is { } existing && existing.Phase is CanaryPhase.Progressing or CanaryPhase.Halted)
        {
            if (existing.Stable != target.Stable || existing.Canary != target.Canary)
            {
                throw new CanaryException($"a rollout of {existing.Canary} (stable {existing.Stable}) is {existing.Phase.ToLowerInvariant()} on {Name}; abort it before starting one of {target.Canary}");
            }
            if (existing.Phase == CanaryPhase.Halted)
            {
                throw new CanaryException($"the rollout on {Name} is halted ({existing.Reason}); run `meshctl canary resume`, `promote` or `abort`");
            }
            if (!existing.Plan.Steps.SequenceEqual(plan.Steps) || existing.Plan.Thresholds != plan.Thresholds || existing.Pause != plan.Pause)
            {
                log.WriteLine($"note: resuming the rollout recorded on {Name} with its recorded plan (steps {string.Join(",", existing.Steps)}); the new options are ignored");
            }
            log.WriteLine($"resuming at step {existing.StepIndex + 1} of {existing.Steps.Count} ({target.Canary} at {existing.CanaryWeight}%)");
            return dryRun ? CanaryResult.DryRun : await RunAsync(existing, cancellationToken);
        }
        var state = CanaryState.Start(target, plan, time.GetUtcNow());
        if (dryRun)
        {
            return PrintPlan(vs, state);
        }
        log.WriteLine($"starting: {target.Stable} {weights.Stable}% / {target.Canary} {weights.Canary}% -> steps {string.Join(", ", plan.Steps.Select(s => s + "%"))}");
        await ApplyAsync(state, expectedCanaryWeight: null, cancellationToken);
        log.WriteLine(StepLine(state));
        return await RunAsync(state, cancellationToken);
    }

    /// <summary>Continues the recorded rollout; a halted one gets its recorded weights back first.</summary>
    public async Task<CanaryResult> ResumeAsync(CancellationToken cancellationToken)
    {
        var vs = await ReadAsync(cancellationToken);
        var state = StateOf(vs) ?? throw new CanaryException($"no rollout is recorded on {Name} (annotation {CanaryState.AnnotationKey}); use `meshctl canary start`");
        if (state.Phase is not (CanaryPhase.Progressing or CanaryPhase.Halted))
        {
            throw new CanaryException($"the rollout on {Name} has ended ({state.Phase}); use `meshctl canary start` for a new one");
        }
        if (state.Phase == CanaryPhase.Halted)
        {
            state.Phase = CanaryPhase.Progressing;
            state.Reason = null;
            state.StepStartedAt = time.GetUtcNow();
            state.History.Add(new CanaryEvent(state.StepStartedAt, "resume", state.CanaryWeight, $"resumed by hand at {state.CanaryWeight}%"));
            if (dryRun)
            {
                PrintPatch(vs, state);
                return CanaryResult.DryRun;
            }
            await ApplyAsync(state, expectedCanaryWeight: null, cancellationToken);
        }
        log.WriteLine($"resuming at step {state.StepIndex + 1} of {state.Steps.Count} ({target.Canary} at {state.CanaryWeight}%)");
        return dryRun ? CanaryResult.DryRun : await RunAsync(state, cancellationToken);
    }

    /// <summary>100 % to the canary now, without the remaining analysis; phase Promoted.</summary>
    public Task<CanaryResult> PromoteAsync(CancellationToken cancellationToken) =>
        EndByHandAsync(CanaryPhase.Promoted, 100, "promoted by hand", CanaryResult.Promoted, cancellationToken);

    /// <summary>100 % to the stable subset now; phase Aborted.</summary>
    public Task<CanaryResult> AbortAsync(CancellationToken cancellationToken) =>
        EndByHandAsync(CanaryPhase.Aborted, 0, "aborted by hand", CanaryResult.Aborted, cancellationToken);

    /// <summary>The recorded state (null: none) and the split's current weights.</summary>
    public async Task<(CanaryState? State, (int Stable, int Canary) Weights)> StatusAsync(CancellationToken cancellationToken)
    {
        var vs = await ReadAsync(cancellationToken);
        return (StateOf(vs), _split.Read(vs));
    }

    private string Name => $"VirtualService {target.Namespace}/{target.VirtualService}";

    private async Task<CanaryResult> EndByHandAsync(string phase, int weight, string message, CanaryResult result, CancellationToken cancellationToken)
    {
        var vs = await ReadAsync(cancellationToken);
        var now = time.GetUtcNow();
        var state = StateOf(vs) ?? CanaryState.Start(target, new CanaryPlan([100], TimeSpan.Zero, TimeSpan.FromMinutes(1), null,
            new CanaryThresholds(0.05, TimeSpan.FromSeconds(2.5), null, 100), [CanaryPlan.ServerSource], $"{target.Service}-{target.Canary}"), now);
        state.Phase = phase;
        state.CanaryWeight = weight;
        state.Reason = message;
        state.History.Add(new CanaryEvent(now, phase.ToLowerInvariant(), weight, message));
        if (dryRun)
        {
            PrintPatch(vs, state);
            return CanaryResult.DryRun;
        }
        await ApplyAsync(state, expectedCanaryWeight: null, cancellationToken);
        log.WriteLine($"{phase.ToLowerInvariant()}: {target.Stable} {100 - weight}% / {target.Canary} {weight}%");
        return result;
    }

    private async Task<CanaryResult> RunAsync(CanaryState state, CancellationToken cancellationToken)
    {
        var plan = state.Plan;
        while (true)
        {
            await Task.Delay(plan.Interval, time, cancellationToken);
            var vs = await ReadAsync(cancellationToken);
            var recorded = StateOf(vs);
            if (recorded is null || recorded.Phase != CanaryPhase.Progressing)
            {
                return EndedElsewhere(recorded);
            }
            state = recorded;
            if (await HaltIfChangedAsync(vs, state, cancellationToken))
            {
                return CanaryResult.Halted;
            }
            var analysis = await analyzer.AnalyseAsync(new CanaryAnalysisRequest(target, plan, plan.Interval), cancellationToken);
            state.LastAnalysis = analysis;
            var now = time.GetUtcNow();
            var elapsed = now - state.StepStartedAt;
            log.WriteLine($"analysis at {state.CanaryWeight}%: {analysis.Verdict.ToString().ToLowerInvariant()}: {analysis.Describe()}");
            var previous = state.CanaryWeight;
            switch (analysis.Verdict)
            {
                case AnalysisVerdict.Failed:
                    return await RollBackAsync(state, $"step {state.StepIndex + 1} ({previous}%): {analysis.Describe()}", previous, cancellationToken);
                case AnalysisVerdict.Inconclusive when plan.MaxWait is { } maxWait && elapsed >= plan.Pause + maxWait:
                    return await RollBackAsync(state, $"step {state.StepIndex + 1} ({previous}%) stayed inconclusive for {elapsed:g} (max wait {maxWait:g}): {analysis.Describe()}", previous, cancellationToken);
                case AnalysisVerdict.Passed when elapsed >= plan.Pause && state.StepIndex + 1 == state.Steps.Count:
                    state.Phase = CanaryPhase.Succeeded;
                    state.CanaryWeight = 100;
                    state.History.Add(new CanaryEvent(now, "succeeded", 100, $"every step passed; {target.Canary} has 100%"));
                    if (await ApplyAsync(state, previous, cancellationToken) is { } stopped)
                    {
                        return stopped;
                    }
                    log.WriteLine($"succeeded: {target.Canary} has 100% of {target.Host}");
                    return CanaryResult.Succeeded;
                case AnalysisVerdict.Passed when elapsed >= plan.Pause:
                    state.StepIndex++;
                    state.StepStartedAt = now;
                    state.CanaryWeight = state.Steps[state.StepIndex];
                    state.History.Add(new CanaryEvent(now, "step", state.CanaryWeight, $"step {state.StepIndex + 1} of {state.Steps.Count}: {target.Canary} at {state.CanaryWeight}%"));
                    if (await ApplyAsync(state, previous, cancellationToken) is { } stepStopped)
                    {
                        return stepStopped;
                    }
                    log.WriteLine(StepLine(state));
                    break;
                default:
                    // Passed but the pause is not over, or inconclusive: record the analysis and wait.
                    if (await ApplyAsync(state, previous, cancellationToken) is { } waitStopped)
                    {
                        return waitStopped;
                    }
                    break;
            }
        }
    }

    /// <summary>Another meshctl promoted, aborted or halted the rollout (or the annotation was removed): its word stands.</summary>
    private CanaryResult EndedElsewhere(CanaryState? recorded)
    {
        var phase = recorded?.Phase ?? "(annotation removed)";
        log.WriteLine($"the rollout was ended elsewhere: {phase}{(recorded?.Reason is { } r ? $" ({r})" : "")}");
        return phase switch
        {
            CanaryPhase.Succeeded => CanaryResult.Succeeded,
            CanaryPhase.Promoted => CanaryResult.Promoted,
            CanaryPhase.Failed => CanaryResult.Failed,
            CanaryPhase.Aborted => CanaryResult.Aborted,
            _ => CanaryResult.Halted,
        };
    }

    private async Task<CanaryResult> RollBackAsync(CanaryState state, string reason, int previous, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        state.Phase = CanaryPhase.Failed;
        state.CanaryWeight = 0;
        state.Reason = reason;
        state.History.Add(new CanaryEvent(now, "rollback", 0, reason));
        if (await ApplyAsync(state, previous, cancellationToken) is { } stopped)
        {
            return stopped;
        }
        log.WriteLine($"rolled back: {target.Stable} has 100% again. Reason: {reason}");
        return CanaryResult.Failed;
    }

    /// <summary>When the split's weights differ from the ones meshctl last set, records the halt (a merge patch of the
    /// annotation alone, so the weights are not touched) and says so.</summary>
    private async Task<bool> HaltIfChangedAsync(JsonObject vs, CanaryState state, CancellationToken cancellationToken)
    {
        string change;
        int seen;
        try
        {
            var weights = _split.Read(vs);
            if (weights.Canary == state.CanaryWeight)
            {
                return false;
            }
            change = $"changed the weights to {target.Stable} {weights.Stable}% / {target.Canary} {weights.Canary}%";
            seen = weights.Canary;
        }
        catch (InvalidOperationException e)
        {
            change = $"changed the routes ({e.Message})";
            seen = -1;
        }
        var now = time.GetUtcNow();
        var reason = $"someone else {change} (meshctl had set {100 - state.CanaryWeight}/{state.CanaryWeight}); meshctl stopped and left them alone";
        state.Phase = CanaryPhase.Halted;
        state.Reason = reason;
        state.History.Add(new CanaryEvent(now, "halted", seen, reason));
        var patch = new JsonObject { ["metadata"] = new JsonObject { ["annotations"] = new JsonObject { [CanaryState.AnnotationKey] = state.ToJson() } } };
        await kubernetes.CustomObjects.PatchNamespacedCustomObjectAsync(new V1Patch(patch.ToJsonString(), V1Patch.PatchType.MergePatch),
            IstioApi.Group, IstioApi.Version, target.Namespace, IstioApi.VirtualServices, target.VirtualService, fieldManager: IstioApi.FieldManager, cancellationToken: cancellationToken);
        log.WriteLine($"halted: {reason}. Resolve it, then `meshctl canary resume` (re-applies {100 - state.CanaryWeight}/{state.CanaryWeight}), `promote` or `abort`.");
        return true;
    }

    /// <summary>Server-side applies the state and its weight, re-reading and retrying on 409 Conflict; null when
    /// written. With <paramref name="expectedCanaryWeight"/> (the loop's writes), a read showing other weights halts
    /// and one showing the rollout ended elsewhere stops, without writing: the result says which.</summary>
    private async Task<CanaryResult?> ApplyAsync(CanaryState state, int? expectedCanaryWeight, CancellationToken cancellationToken)
    {
        var vs = await ReadAsync(cancellationToken);
        for (var attempt = 1; ; attempt++)
        {
            if (expectedCanaryWeight is not null && StateOf(vs) is var ended && ended?.Phase != CanaryPhase.Progressing)
            {
                return EndedElsewhere(ended);
            }
            if (expectedCanaryWeight is { } expected && !HasCanaryWeight(vs, expected))
            {
                // Halt on the state as recorded (the step meshctl was at), not on the one it was about to write.
                var recorded = StateOf(vs) ?? state.Clone();
                recorded.CanaryWeight = expected;
                await HaltIfChangedAsync(vs, recorded, cancellationToken);
                return CanaryResult.Halted;
            }
            try
            {
                await kubernetes.CustomObjects.PatchNamespacedCustomObjectAsync(new V1Patch(Patch(vs, state).ToJsonString(), V1Patch.PatchType.ApplyPatch),
                    IstioApi.Group, IstioApi.Version, target.Namespace, IstioApi.VirtualServices, target.VirtualService, fieldManager: IstioApi.FieldManager, force: true, cancellationToken: cancellationToken);
                return null;
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempt < MaxAttempts)
            {
                log.WriteLine($"conflict writing {Name} (attempt {attempt} of {MaxAttempts}); re-reading");
                vs = await ReadAsync(cancellationToken);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict)
            {
                throw new CanaryException($"{Name} kept changing: {MaxAttempts} writes in a row answered 409 Conflict", e);
            }
        }
    }

    /// <summary>The apply patch: identity, resourceVersion (optimistic concurrency), the state annotation, and the
    /// whole <c>spec.http</c> with the state's weight on every split route.</summary>
    private JsonObject Patch(JsonObject vs, CanaryState state)
    {
        var metadata = new JsonObject
        {
            ["name"] = target.VirtualService,
            ["namespace"] = target.Namespace,
        };
        if ((string?)vs["metadata"]?["resourceVersion"] is { } resourceVersion && !dryRun)
        {
            metadata["resourceVersion"] = resourceVersion;
        }
        metadata["annotations"] = new JsonObject { [CanaryState.AnnotationKey] = state.ToJson() };
        return new JsonObject
        {
            ["apiVersion"] = $"{IstioApi.Group}/{IstioApi.Version}",
            ["kind"] = "VirtualService",
            ["metadata"] = metadata,
            ["spec"] = new JsonObject { ["http"] = _split.With(vs, state.CanaryWeight)["spec"]!["http"]!.DeepClone() },
        };
    }

    private CanaryResult PrintPlan(JsonObject vs, CanaryState state)
    {
        log.WriteLine($"dry run: the patches `meshctl canary start` would send to {Name} (application/apply-patch+yaml, fieldManager={IstioApi.FieldManager}, force=true), one per step; analysis runs between them; nothing is sent.");
        for (var i = 0; i < state.Steps.Count; i++)
        {
            if (i > 0)
            {
                state.StepIndex = i;
                state.CanaryWeight = state.Steps[i];
                state.History.Add(new CanaryEvent(state.StepStartedAt, "step", state.CanaryWeight, $"step {i + 1} of {state.Steps.Count}: {target.Canary} at {state.CanaryWeight}%"));
            }
            log.WriteLine($"--- step {i + 1} of {state.Steps.Count}: {target.Stable} {100 - state.CanaryWeight}% / {target.Canary} {state.CanaryWeight}%");
            log.WriteLine(Indented(Patch(vs, state)));
        }
        log.WriteLine($"--- on success: {target.Canary} 100% (phase Succeeded); on a failed analysis: {target.Stable} 100% (phase Failed)");
        return CanaryResult.DryRun;
    }

    private void PrintPatch(JsonObject vs, CanaryState state)
    {
        log.WriteLine($"dry run: the patch meshctl would send to {Name} (application/apply-patch+yaml, fieldManager={IstioApi.FieldManager}, force=true); nothing is sent.");
        log.WriteLine(Indented(Patch(vs, state)));
    }

    // JSON is YAML; indented, it is readable and exactly what is sent.
    private static string Indented(JsonObject patch) => patch.ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    private string StepLine(CanaryState state) =>
        $"step {state.StepIndex + 1} of {state.Steps.Count}: {target.Stable} {100 - state.CanaryWeight}% / {target.Canary} {state.CanaryWeight}% (pause {state.Pause:g}, analysis every {state.Interval:g})";

    private async Task<JsonObject> ReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await kubernetes.CustomObjects.GetNamespacedCustomObjectAsync<JsonObject>(IstioApi.Group, IstioApi.Version, target.Namespace, IstioApi.VirtualServices, target.VirtualService, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound)
        {
            throw new CanaryException($"{Name} not found (check --namespace, --virtual-service and --context)", e);
        }
    }

    private bool HasCanaryWeight(JsonObject vs, int weight)
    {
        try
        {
            return _split.Read(vs).Canary == weight;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static CanaryState? StateOf(JsonObject vs) =>
        (string?)vs["metadata"]?["annotations"]?[CanaryState.AnnotationKey] is { } json ? CanaryState.FromJson(json) : null;
}
