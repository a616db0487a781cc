using System.Buffers.Binary;
using System.Text;

namespace InferenceServer.Tests.Packaging;

/// <summary>
/// The <c>DT_NEEDED</c> entries of a 64-bit little-endian ELF shared library (what <c>objdump -p</c> lists as NEEDED):
/// the libraries the dynamic loader must find before the library itself loads. Read from the program headers
/// (PT_DYNAMIC, and PT_LOAD to map DT_STRTAB's address to a file offset), as the loader does.
/// </summary>
internal static class ElfDependencies
{
    private static readonly byte[] Magic = [0x7F, (byte)'E', (byte)'L', (byte)'F'];
    private const uint PtLoad = 1;
    private const uint PtDynamic = 2;
    private const long DtNull = 0;
    private const long DtNeeded = 1;
    private const long DtStrtab = 5;

    public static IReadOnlyList<string> Needed(string path)
    {
        var file = File.ReadAllBytes(path);
        var span = file.AsSpan();
        if (file.Length < 64 || !span[..4].SequenceEqual(Magic))
        {
            throw new InvalidDataException($"{path} is not an ELF file");
        }
        if (file[4] != 2 || file[5] != 1)
        {
            throw new InvalidDataException($"{path}: only 64-bit little-endian ELF is read here");
        }
        var programHeaders = (long)BinaryPrimitives.ReadUInt64LittleEndian(span[32..]);
        var entrySize = BinaryPrimitives.ReadUInt16LittleEndian(span[54..]);
        var entries = BinaryPrimitives.ReadUInt16LittleEndian(span[56..]);

        var loads = new List<(ulong Address, ulong Offset, ulong Size)>();
        (long Offset, long Size)? dynamic = null;
        for (var i = 0; i < entries; i++)
        {
            var header = span[(int)(programHeaders + (i * entrySize))..];
            var type = BinaryPrimitives.ReadUInt32LittleEndian(header);
            var offset = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
            var address = BinaryPrimitives.ReadUInt64LittleEndian(header[16..]);
            var fileSize = BinaryPrimitives.ReadUInt64LittleEndian(header[32..]);
            if (type == PtLoad)
            {
                loads.Add((address, offset, fileSize));
            }
            else if (type == PtDynamic)
            {
                dynamic = ((long)offset, (long)fileSize);
            }
        }
        if (dynamic is not { } table)
        {
            return [];
        }

        var needed = new List<ulong>();
        ulong? strtab = null;
        for (var at = table.Offset; at + 16 <= table.Offset + table.Size; at += 16)
        {
            var tag = BinaryPrimitives.ReadInt64LittleEndian(span[(int)at..]);
            var value = BinaryPrimitives.ReadUInt64LittleEndian(span[(int)(at + 8)..]);
            if (tag == DtNull)
            {
                break;
            }
            if (tag == DtNeeded)
            {
                needed.Add(value);
            }
            else if (tag == DtStrtab)
            {
                strtab = value;
            }
        }
        if (strtab is not { } stringsAddress)
        {
            throw new InvalidDataException($"{path}: a dynamic section without DT_STRTAB");
        }
        var segment = loads.First(l => stringsAddress >= l.Address && stringsAddress < l.Address + l.Size);
        var strings = (long)(stringsAddress - segment.Address + segment.Offset);
        var names = new List<string>(needed.Count);
        foreach (var name in needed)
        {
            names.Add(ReadString(span, strings + (long)name));
        }
        return names;
    }

    private static string ReadString(ReadOnlySpan<byte> file, long offset)
    {
        var rest = file[(int)offset..];
        return Encoding.ASCII.GetString(rest[..rest.IndexOf((byte)0)]);
    }
}
