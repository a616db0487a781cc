using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using InferenceServer.Tests.Infrastructure;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace InferenceServer.Tests.Deployment;

/// <summary>One YAML document of the shipped manifests, as JSON (YAML 1.2 core schema: a plain scalar that reads as a
/// number, boolean or null is one; a quoted scalar is a string).</summary>
internal sealed record Manifest(string Source, string ApiVersion, string Kind, string Name, string? Namespace, JsonObject Body)
{
    public string Group => ApiVersion.Contains('/') ? ApiVersion[..ApiVersion.IndexOf('/')] : "";

    public string Version => ApiVersion.Contains('/') ? ApiVersion[(ApiVersion.IndexOf('/') + 1)..] : ApiVersion;

    public JsonObject Spec => Body["spec"] as JsonObject ?? throw new InvalidOperationException($"{this} has no spec");

    public override string ToString() => $"{Kind}/{Name} ({Source})";
}

/// <summary>
/// The shipped manifests: every YAML document under istio/ (recursively), every k8s/ overlay rendered by
/// <c>kubectl kustomize</c>, and the contract (k8s/base/contract.env) they must agree with.
/// </summary>
internal static class Manifests
{
    private static readonly Lazy<IReadOnlyDictionary<string, string>> ContractValues = new(LoadContract);
    private static readonly Lazy<IReadOnlyList<Manifest>> IstioDocuments = new(() => LoadFolder("istio"));
    private static readonly Dictionary<string, IReadOnlyList<Manifest>> Rendered = new(StringComparer.Ordinal);

    public static string K8s => Path.Combine(Paths.RepositoryRoot, "k8s");

    public static string IstioFolder => Path.Combine(Paths.RepositoryRoot, "istio");

    /// <summary>k8s/base/contract.env: KEY=VALUE lines, # comments.</summary>
    public static IReadOnlyDictionary<string, string> Contract => ContractValues.Value;

    /// <summary>A contract value; fails the test naming the key when it is missing.</summary>
    public static string C(string key) =>
        Contract.TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"k8s/base/contract.env has no {key}");

    public static int CInt(string key) => int.Parse(C(key), CultureInfo.InvariantCulture);

    /// <summary>Every YAML document under istio/ (subfolders too: variants and the gateway-only layout).</summary>
    public static IReadOnlyList<Manifest> Istio => IstioDocuments.Value;

    /// <summary>The overlay names under k8s/overlays.</summary>
    public static IReadOnlyList<string> Overlays =>
        Directory.GetDirectories(Path.Combine(K8s, "overlays")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList()!;

    /// <summary>An overlay as <c>kubectl kustomize k8s/overlays/NAME</c> renders it (cached per test run).</summary>
    public static IReadOnlyList<Manifest> Render(string overlay)
    {
        lock (Rendered)
        {
            if (!Rendered.TryGetValue(overlay, out var documents))
            {
                var yaml = Kustomize(Path.Combine(K8s, "overlays", overlay));
                documents = Parse(yaml, $"k8s/overlays/{overlay} (rendered)");
                Rendered[overlay] = documents;
            }
            return documents;
        }
    }

    /// <summary>Everything a user applies: each overlay's rendering plus istio/.</summary>
    public static IEnumerable<Manifest> All => Overlays.SelectMany(Render).Concat(Istio);

    /// <summary>Runs kubectl kustomize on a folder; throws with kubectl's error output when it fails.</summary>
    public static string Kustomize(string folder)
    {
        var start = new ProcessStartInfo("kubectl", ["kustomize", folder])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("kubectl did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"kubectl kustomize {folder} failed ({process.ExitCode}): {stderr.Result}");
        }
        return stdout.Result;
    }

    /// <summary>Parses a multi-document YAML text; empty documents are skipped.</summary>
    public static IReadOnlyList<Manifest> Parse(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new InvalidOperationException($"{source}: not valid YAML: {e.Message}", e);
        }
        var documents = new List<Manifest>();
        foreach (var document in stream.Documents)
        {
            if (ToJson(document.RootNode) is not JsonObject body)
            {
                continue;
            }
            var apiVersion = (string?)body["apiVersion"] ?? throw new InvalidOperationException($"{source}: a document without apiVersion");
            var kind = (string?)body["kind"] ?? throw new InvalidOperationException($"{source}: a document without kind");
            var name = (string?)body["metadata"]?["name"] ?? throw new InvalidOperationException($"{source}: {kind} without metadata.name");
            documents.Add(new Manifest(source, apiVersion, kind, name, (string?)body["metadata"]?["namespace"], body));
        }
        return documents;
    }

    /// <summary>One YAML value (such as an annotation that holds YAML) as JSON, typed as <see cref="Parse"/> types it.</summary>
    public static JsonNode? ParseValue(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new InvalidOperationException($"{source}: not valid YAML: {e.Message}", e);
        }
        return stream.Documents.Count == 0 ? null : ToJson(stream.Documents[0].RootNode);
    }

    /// <summary>Files under a repository folder whose name ends .yaml or .yml, relative paths, sorted.</summary>
    public static IReadOnlyList<string> YamlFiles(string folder) =>
        Directory.EnumerateFiles(Path.Combine(Paths.RepositoryRoot, folder), "*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(Paths.RepositoryRoot, f))
            .Order(StringComparer.Ordinal)
            .ToList();

    private static IReadOnlyList<Manifest> LoadFolder(string folder) =>
        YamlFiles(folder).SelectMany(f => Parse(File.ReadAllText(Path.Combine(Paths.RepositoryRoot, f)), f)).ToList();

    private static IReadOnlyDictionary<string, string> LoadContract()
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in File.ReadAllLines(Path.Combine(K8s, "base", "contract.env")))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var eq = line.IndexOf('=');
            values.Add(line[..eq], line[(eq + 1)..]);
        }
        return values;
    }

    private static readonly Regex Int = new("^[-+]?[0-9]+$|^0o[0-7]+$|^0x[0-9a-fA-F]+$", RegexOptions.Compiled);
    private static readonly Regex Float = new(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$", RegexOptions.Compiled);

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv =>
            KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new InvalidOperationException($"unsupported YAML node {node.NodeType} at {node.Start}"),
    };

    private static JsonNode? Scalar(YamlScalarNode scalar)
    {
        var text = scalar.Value ?? "";
        if (scalar.Style != ScalarStyle.Plain)
        {
            return JsonValue.Create(text);
        }
        switch (text)
        {
            case "" or "~" or "null" or "Null" or "NULL":
                return null;
            case "true" or "True" or "TRUE":
                return JsonValue.Create(true);
            case "false" or "False" or "FALSE":
                return JsonValue.Create(false);
        }
        if (Int.IsMatch(text) && long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            return JsonValue.Create(integer);
        }
        if (Float.IsMatch(text) && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var real))
        {
            return JsonValue.Create(real);
        }
        return JsonValue.Create(text);
    }
}
