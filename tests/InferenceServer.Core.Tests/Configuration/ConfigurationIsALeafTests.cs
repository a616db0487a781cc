using System.Reflection;
using InferenceServer.Configuration;

namespace InferenceServer.Tests.Core.Configuration;

/// <summary>
/// Configuration is the leaf of Core: everything reads it, it reads nothing of Core's but the element-type vocabulary
/// (<see cref="Tensors.DataType"/>), and it holds values, never runtime objects (engines, tokenizers, schedulers).
/// </summary>
public sealed class ConfigurationIsALeafTests
{
    private const BindingFlags Members = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    [Fact]
    public void Configuration_types_use_nothing_of_core_but_datatype()
    {
        // Configuration's folders (HuggingFace/) are namespaces of it and follow the same rule.
        var types = typeof(ModelConfig).Assembly.GetTypes().Where(t => IsConfiguration(t.Namespace)).ToArray();
        Assert.Contains(typeof(ModelConfigFile), types);
        Assert.Contains(typeof(GenerationSettings), types);
        Assert.Contains(typeof(InferenceServer.Configuration.HuggingFace.HuggingFaceFiles), types);
        var offending = new List<string>();
        foreach (var type in types)
        {
            foreach (var used in UsedTypes(type))
            {
                if (used.Namespace is { } ns && ns.StartsWith("InferenceServer", StringComparison.Ordinal)
                    && !IsConfiguration(ns) && used != typeof(InferenceServer.Tensors.DataType))
                {
                    offending.Add($"{type.FullName} uses {used.FullName}");
                }
            }
        }
        Assert.Empty(offending.Distinct());
    }

    [Fact]
    public void The_rule_would_catch_a_runtime_object()
    {
        // The check above must be able to fail: a type holding a tokenizer is seen through its members.
        var used = UsedTypes(typeof(InferenceServer.Generation.GenerationModel)).ToArray();
        Assert.Contains(typeof(InferenceServer.Generation.ITokenizer), used);
    }

    private static bool IsConfiguration(string? ns) =>
        ns is not null && (ns == "InferenceServer.Configuration" || ns.StartsWith("InferenceServer.Configuration.", StringComparison.Ordinal));

    private static IEnumerable<Type> UsedTypes(Type type)
    {
        var direct = new List<Type?> { type.BaseType };
        direct.AddRange(type.GetInterfaces());
        foreach (var field in type.GetFields(Members))
        {
            direct.Add(field.FieldType);
        }
        foreach (var property in type.GetProperties(Members))
        {
            direct.Add(property.PropertyType);
        }
        foreach (var method in type.GetMethods(Members).Cast<MethodBase>().Concat(type.GetConstructors(Members)))
        {
            if (method is MethodInfo m)
            {
                direct.Add(m.ReturnType);
            }
            direct.AddRange(method.GetParameters().Select(p => p.ParameterType));
            if (method.GetMethodBody() is { } body)
            {
                direct.AddRange(body.LocalVariables.Select(v => v.LocalType));
            }
        }
        return direct.OfType<Type>().SelectMany(Unwrap);
    }

    private static IEnumerable<Type> Unwrap(Type type)
    {
        if (type.HasElementType)
        {
            return Unwrap(type.GetElementType()!);
        }
        return type.IsGenericType ? type.GetGenericArguments().SelectMany(Unwrap).Append(type.GetGenericTypeDefinition()) : [type];
    }
}
