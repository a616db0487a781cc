using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using InferenceServer.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace InferenceServer.Backends.OnnxRuntime;

/// <summary>An engine output's own (native, host) memory as a tensor buffer: read in place, the value disposed with the last view.</summary>
internal sealed unsafe class OrtValueMemory : BufferOwner
{
    private readonly OrtValue _value;
    private readonly NativeMemory _memory;

    public OrtValueMemory(OrtValue value)
    {
        _value = value;
        var bytes = value.GetTensorMutableRawData();
        _memory = new NativeMemory((byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(bytes)), bytes.Length);
    }

    public override Memory<byte> Memory => _memory.Memory;

    protected override void Free() => _value.Dispose();

    /// <summary>Native memory that does not move, exposed as <see cref="Memory{T}"/>.</summary>
    private sealed class NativeMemory(byte* pointer, int length) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new(pointer, length);

        public override MemoryHandle Pin(int elementIndex = 0) => new(pointer + elementIndex);

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
