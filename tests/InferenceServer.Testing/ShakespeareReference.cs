using TorchSharp;
using static TorchSharp.torch;

namespace InferenceServer.Tests.Infrastructure;

/// <summary>
/// The direct in-process greedy loop over shakespeare.pt.zip (TorchSharp, no server): the reference the server's
/// generation must reproduce. Feeds the last 32 ids, left-padded with id 0, as the server's window decoder does.
/// </summary>
public sealed class ShakespeareReference : IDisposable
{
    private readonly jit.ScriptModule _module = jit.load(TorchScriptRepository.File("shakespeare.pt.zip"));

    static ShakespeareReference() => Backends.TorchSharp.OpenMpWaitPolicy.PreferPassive();

    public ShakespeareReference() => _module.eval();

    /// <summary>Greedy continuation of <paramref name="prompt"/>, with each step's gap between the two largest logits.</summary>
    public (string Text, float[] TopTwoGaps) Greedy(string prompt, int tokens)
    {
        var vocabulary = TorchScriptRepository.ShakespeareVocabulary;
        var ids = prompt.Select(c => (long)vocabulary.IndexOf(c)).ToList();
        var window = new long[TorchScriptRepository.ShakespeareWindow];
        var text = new System.Text.StringBuilder();
        var gaps = new float[tokens];
        using var mode = inference_mode();
        for (var step = 0; step < tokens; step++)
        {
            for (var i = 0; i < window.Length; i++)
            {
                var j = ids.Count - window.Length + i;
                window[i] = j >= 0 ? ids[j] : 0;
            }
            using var scope = NewDisposeScope();
            var logits = ((Tensor)_module.forward(tensor(window, [1, window.Length])))[0, -1].data<float>().ToArray();
            var best = 0;
            for (var i = 1; i < logits.Length; i++)
            {
                if (logits[i] > logits[best])
                {
                    best = i;
                }
            }
            var second = logits.Where((_, i) => i != best).Max();
            gaps[step] = logits[best] - second;
            ids.Add(best);
            text.Append(vocabulary[best]);
        }
        return (text.ToString(), gaps);
    }

    public void Dispose() => _module.Dispose();
}
