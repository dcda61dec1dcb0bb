using System.Buffers.Binary;
using System.Text;

namespace SharpTune.Runtime;

/// <summary>
/// Marks symbol-version requirements of an ELF shared library as weak (VER_FLG_WEAK), so that the dynamic
/// loader accepts a system library that lacks that version. TorchSharp's libLibTorchSharp.so asks for
/// GLIBCXX_3.4.32 (GCC 13) through one link-time anchor symbol that is never called; Debian 12 and Ubuntu
/// 22.04 ship GLIBCXX_3.4.30, so the unpatched library does not load there.
/// </summary>
internal static class ElfVersionPatcher
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    /// <summary>Returns a copy of <paramref name="elf"/> in which the named version requirements are weak,
    /// and how many entries were changed.</summary>
    public static (byte[] Patched, int Changed) WeakenVersions(byte[] elf, IReadOnlySet<string> versions)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("only 64-bit little-endian ELF files are supported");

        var span = elf.AsSpan();
        ulong shoff = BinaryPrimitives.ReadUInt64LittleEndian(span[0x28..]);
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(span[0x3C..]);

        var patched = (byte[])elf.Clone();
        int changed = 0;
        for (int s = 0; s < shnum; s++)
        {
            var sh = span.Slice(checked((int)shoff + s * shentsize), shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed) continue;

            int verneedOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]));
            int strtabIndex = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            int entryCount = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x2C..]);   // sh_info: number of Verneed entries
            var strtabHeader = span.Slice(checked((int)shoff + strtabIndex * shentsize), shentsize);
            int strtabOffset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(strtabHeader[0x18..]));

            int need = verneedOffset;
            for (int n = 0; n < entryCount; n++)
            {
                int auxCount = BinaryPrimitives.ReadUInt16LittleEndian(span[(need + 2)..]);
                int aux = need + (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(need + 8)..]);
                for (int a = 0; a < auxCount; a++)
                {
                    int nameOffset = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 8)..]);
                    if (versions.Contains(ReadCString(span, strtabOffset + nameOffset)))
                    {
                        ushort flags = BinaryPrimitives.ReadUInt16LittleEndian(span[(aux + 4)..]);
                        BinaryPrimitives.WriteUInt16LittleEndian(patched.AsSpan(aux + 4), (ushort)(flags | VerFlgWeak));
                        changed++;
                    }
                    aux += (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(aux + 12)..]);
                }
                int next = (int)BinaryPrimitives.ReadUInt32LittleEndian(span[(need + 12)..]);
                if (next == 0) break;
                need += next;
            }
        }
        return (patched, changed);
    }

    static string ReadCString(ReadOnlySpan<byte> data, int offset)
    {
        int end = data[offset..].IndexOf((byte)0);
        return Encoding.ASCII.GetString(data.Slice(offset, end));
    }
}
