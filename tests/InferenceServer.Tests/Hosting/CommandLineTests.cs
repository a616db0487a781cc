using System.Collections;
using InferenceServer.Hosting;

namespace InferenceServer.Tests.Hosting;

public sealed class CommandLineTests
{
    [Fact]
    public void Flags_map_to_configuration_keys_in_both_forms()
    {
        var values = CommandLine.Parse(["--model-repository", "/m", "--http-port=9000", "--load-model", "a", "--load-model", "b", "--strict-readiness", "false"]);
        Assert.Equal("/m", values["Repository:Path"]);
        Assert.Equal("9000", values["Server:HttpPort"]);
        Assert.Equal("a", values["Repository:StartupModels:0"]);
        Assert.Equal("b", values["Repository:StartupModels:1"]);
        Assert.Equal("false", values["Repository:StrictReadiness"]);
    }

    [Theory]
    [InlineData("--no-such-flag", "1")]
    [InlineData("--http-port")]
    [InlineData("--strict-readiness", "--http-port", "1")]
    public void Bad_flags_are_refused(params string[] args) => Assert.Throws<ArgumentException>(() => CommandLine.Parse(args));

    [Theory]
    [InlineData("--http-port", "abc", "HttpPort")]
    [InlineData("--model-control-mode", "sometimes", "ModelControlMode")]
    [InlineData("--strict-readiness", "maybe", "StrictReadiness")]
    [InlineData("--access-log", "maybe", "AccessLog")]
    public void Values_of_the_wrong_type_are_refused_with_the_setting_named(string flag, string value, string setting)
    {
        var e = Assert.Throws<ArgumentException>(() => InferenceServerApp.Create([flag, value]));
        Assert.Contains(setting, e.Message);
    }

    [Fact]
    public void Environment_variables_are_the_flags_twins()
    {
        var env = new Hashtable { ["INFERENCE_GRPC_PORT"] = "9001", ["INFERENCE_LOAD_MODEL"] = "a, b", ["UNRELATED"] = "x" };
        var values = CommandLine.FromEnvironment(env);
        Assert.Equal("9001", values["Server:GrpcPort"]);
        Assert.Equal("a", values["Repository:StartupModels:0"]);
        Assert.Equal("b", values["Repository:StartupModels:1"]);
        Assert.Equal(3, values.Count);
    }

    [Fact]
    public void Every_flag_is_in_the_usage_text()
    {
        var usage = CommandLine.Usage();
        Assert.All(CommandLine.Flags, f => Assert.Contains(f.Name, usage));
        Assert.All(CommandLine.Flags, f => Assert.Contains(f.Environment, usage));
    }
}
