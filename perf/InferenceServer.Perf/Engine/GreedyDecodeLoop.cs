using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace InferenceServer.Perf;

/// <summary>
/// One raw greedy decode loop over a window language model (TorchScript through TorchSharp, in this process), with
/// its own module as each of the server's engine instances has: no server, no scheduler, no copies beyond libtorch's
/// input. <see cref="ParallelDecodeLoops"/> runs one or more of them side by side, each on a thread of its own. Each
/// step feeds a <c>[batch, window]</c> INT64 tensor, every row the last <c>window</c> token ids of its sequence
/// left-padded with 0, runs <c>forward</c> in inference mode inside a dispose scope, takes the argmax of
/// <c>output[:, -1, :]</c> per row and appends it. A row that has generated <c>maxTokens</c> starts over from its
/// prompt, as a finished request is replaced by the next. The figure is tokens per second: batch tokens per step.
/// </summary>
internal sealed class GreedyDecodeLoop : IDisposable
{
    private readonly jit.ScriptModule _module;
    private readonly int _window;
    private readonly IReadOnlyList<long[]> _prompts;
    private readonly int _maxTokens;

    public GreedyDecodeLoop(string modelFile, int window, IReadOnlyList<long[]> prompts, int maxTokens)
    {
        _module = jit.load(modelFile);
        _module.eval();
        _window = window;
        _prompts = prompts;
        _maxTokens = maxTokens;
    }

    /// <summary>
    /// The step over <paramref name="batch"/> new sequences, the first of them the batch's row
    /// <paramref name="firstRow"/> (rows take the prompts in turn, so loops sharing a batch start different prompts).
    /// </summary>
    public Action NewBatch(int batch, int firstRow) => new Rows(this, batch, firstRow).Step;

    /// <summary>
    /// The greedy continuation of one prompt (batch 1), to compare with the server's. It runs on a thread of its own
    /// that ends with it: libtorch's OpenMP gives every calling thread a team of worker threads that lives as long as
    /// that thread, and a pool thread's would outlive the call.
    /// </summary>
    public long[] Greedy(long[] prompt, int tokens)
    {
        long[] generated = [];
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                var rows = new Rows(this, 1, 0, prompt);
                for (var i = 0; i < tokens; i++)
                {
                    rows.Step();
                }
                generated = rows.Generated(0);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failure = e;
            }
        }) { IsBackground = true, Name = "raw-greedy" };
        thread.Start();
        thread.Join();
        return failure is null ? generated : throw new InvalidOperationException("the raw greedy loop failed: " + failure.Message, failure);
    }

    public void Dispose() => _module.Dispose();

    /// <summary>The sequences of one batch and the step over them.</summary>
    private sealed class Rows
    {
        private readonly GreedyDecodeLoop _loop;
        private readonly long[][] _tokens;
        private readonly int[] _lengths;
        private readonly int[] _promptLengths;
        private readonly long[] _input;
        private readonly long[] _shape;

        public Rows(GreedyDecodeLoop loop, int batch, int firstRow, long[]? prompt = null)
        {
            _loop = loop;
            _tokens = new long[batch][];
            _lengths = new int[batch];
            _promptLengths = new int[batch];
            for (var b = 0; b < batch; b++)
            {
                var p = prompt ?? loop._prompts[(firstRow + b) % loop._prompts.Count];
                _tokens[b] = new long[p.Length + loop._maxTokens];
                p.CopyTo(_tokens[b], 0);
                _lengths[b] = _promptLengths[b] = p.Length;
            }
            _input = new long[batch * loop._window];
            _shape = [batch, loop._window];
        }

        public long[] Generated(int row) => _tokens[row][_promptLengths[row].._lengths[row]];

        public void Step()
        {
            var window = _loop._window;
            for (var b = 0; b < _tokens.Length; b++)
            {
                var row = _input.AsSpan(b * window, window);
                var take = Math.Min(_lengths[b], window);
                row[..(window - take)].Clear();
                _tokens[b].AsSpan(_lengths[b] - take, take).CopyTo(row[(window - take)..]);
            }
            using var mode = inference_mode();
            using var scope = NewDisposeScope();
            var logits = (Tensor)_loop._module.forward(tensor(_input, _shape));
            var next = MemoryMarshal.Cast<byte, long>(logits.select(1, -1).argmax(-1).bytes);
            for (var b = 0; b < _tokens.Length; b++)
            {
                if (_lengths[b] == _tokens[b].Length)
                {
                    _lengths[b] = _promptLengths[b];
                }
                _tokens[b][_lengths[b]++] = next[b];
            }
        }
    }
}
