using InferenceServer.Backends;
using InferenceServer.Inference;
using InferenceServer.Repository;
using InferenceServer.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace InferenceServer.Tests.Core.Repository;

/// <summary>The NOT_FOUND answer for an unknown model names the models the repository does hold (up to ten, sorted).</summary>
public sealed class ModelRepositoryUnknownModelTests
{
    private static async Task<ModelRepository> LoadAsync(IEnumerable<string> names, ModelControlMode mode = ModelControlMode.None)
    {
        var path = Paths.NewTempDirectory("unknown-model-repo");
        foreach (var name in names)
        {
            GateBackend.WriteModel(path, name, "");
        }
        var repository = new ModelRepository(
            new ModelRepositoryOptions { Path = path, ModelControlMode = mode, StartupModels = ["*"] },
            new IModelBackend[] { new GateBackend() },
            NullLogger<ModelRepository>.Instance);
        await repository.LoadStartupModelsAsync(CancellationToken.None);
        return repository;
    }

    private static string NotFound(ModelRepository repository, string name)
    {
        var e = Assert.Throws<InferenceException>(() => repository.Select(name, ""));
        Assert.Equal(InferenceErrorKind.NotFound, e.Kind);
        return e.Message;
    }

    [Fact]
    public async Task The_models_that_exist_are_listed_sorted()
    {
        using var repository = await LoadAsync(["unk-zeta", "unk-alpha", "unk-Mid"]);
        Assert.Equal("unknown model 'nosuch' (models: unk-Mid, unk-alpha, unk-zeta)", NotFound(repository, "nosuch"));
        // The same answer wherever a request names the model.
        Assert.Equal(NotFound(repository, "nosuch"), Assert.Throws<InferenceException>(() => repository.Acquire("nosuch", "")).Message);
    }

    [Fact]
    public async Task Ten_models_are_listed_in_full_and_more_are_counted()
    {
        using (var ten = await LoadAsync(Enumerable.Range(0, 10).Select(i => $"unk10-{i:D2}")))
        {
            Assert.Equal(
                "unknown model 'x' (models: " + string.Join(", ", Enumerable.Range(0, 10).Select(i => $"unk10-{i:D2}")) + ")",
                NotFound(ten, "x"));
        }
        using var twelve = await LoadAsync(Enumerable.Range(0, 12).Reverse().Select(i => $"unk12-{i:D2}"));
        Assert.Equal(
            "unknown model 'x' (models: " + string.Join(", ", Enumerable.Range(0, 10).Select(i => $"unk12-{i:D2}")) + " and 2 more)",
            NotFound(twelve, "x"));
    }

    [Fact]
    public async Task An_empty_repository_says_it_has_no_models()
    {
        using var repository = await LoadAsync([]);
        Assert.Equal("unknown model 'nosuch' (no models are loaded)", NotFound(repository, "nosuch"));
    }

    [Fact]
    public async Task An_unloaded_model_is_unknown_and_not_listed()
    {
        using var repository = await LoadAsync(["unk-kept", "unk-gone"], ModelControlMode.Explicit);
        await repository.UnloadAsync("unk-gone", CancellationToken.None);
        Assert.Equal("unknown model 'unk-gone' (models: unk-kept)", NotFound(repository, "unk-gone"));
    }
}
