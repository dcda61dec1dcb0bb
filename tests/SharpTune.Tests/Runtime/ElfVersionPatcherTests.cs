using SharpTune.Runtime;

namespace SharpTune.Tests.Runtime;

public class ElfVersionPatcherTests
{
    [Fact]
    public void WeakensOnlyTheNamedVersionNeed()
    {
        string lib = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");
        byte[] original = File.ReadAllBytes(lib);
        var (patched, changed) = ElfVersionPatcher.WeakenVersions(original, new HashSet<string> { "GLIBCXX_3.4.32" });
        Assert.Equal(1, changed);
        int differing = original.Zip(patched).Count(p => p.First != p.Second);
        Assert.Equal(1, differing);   // one flags byte
    }

    [Fact]
    public void RejectsNonElfInput()
    {
        Assert.Throws<InvalidDataException>(() => ElfVersionPatcher.WeakenVersions(new byte[100], new HashSet<string>()));
    }
}
