using SharpTune.Quantization;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

public class AdamW8bitTests
{
    static (Tensor P, Tensor G) Param(long n, long seed)
    {
        _ = TestPaths.Cpu;
        using var gen = new Generator((ulong)seed);
        return (randn([n], float32, generator: gen), zeros([n], float32));
    }

    static void Grad(Tensor g, long seed)
    {
        using var gen = new Generator((ulong)seed);
        using var r = randn(g.shape, float32, generator: gen);
        g.copy_(r * 0.1);
    }

    [Fact]
    public void SlicedStepsEqualOneSliceBitForBit()
    {
        const long n = 3000;   // several slices of 512 and a tail that is not a whole 256-block
        var (pWhole, gWhole) = Param(n, 4);
        var (pSliced, gSliced) = Param(n, 4);
        using var whole = new AdamW8bit([(pWhole, gWhole)]) { SliceValues = 1L << 22 };
        using var sliced = new AdamW8bit([(pSliced, gSliced)]) { SliceValues = 512 };
        for (int step = 1; step <= 3; step++)
        {
            Grad(gWhole, 200 + step); Grad(gSliced, 200 + step);
            whole.Step(1e-2); sliced.Step(1e-2);
        }
        Assert.True(pWhole.equal(pSliced).all().item<bool>(), "parameters differ");
        foreach (var ((name, a), (_, b)) in whole.State().Zip(sliced.State()))
            Assert.True(a.equal(b).all().item<bool>(), $"{name} differs");
    }

    [Fact]
    public void FirstStepEqualsAdamWAndLaterMomentsStayWithinTheirQuantizationBound()
    {
        const long n = 1000;   // not a whole number of 256-blocks
        var (p8, g8) = Param(n, 1);
        var (p32, g32) = Param(n, 1);
        using var adam8 = new AdamW8bit([(p8, g8)]);
        using var adam32 = new AdamW([(p32, g32)]);
        for (int step = 1; step <= 3; step++)
        {
            Grad(g8, 100 + step); Grad(g32, 100 + step);
            adam8.Step(1e-2); adam32.Step(1e-2);
            if (step == 1) Assert.True(p8.equal(p32).all().item<bool>(), $"from zero moments the first update is AdamW's exactly; differs by {(p8 - p32).abs().max().item<float>()}");
        }
        // dequantized 8-bit moments vs AdamW's fp32 moments: one requantization error each step, each within half the
        // dynamic map's widest gap times its block's absmax (the drift adds up over the 3 steps)
        var state8 = adam8.State().ToDictionary(s => s.Name, s => s.Tensor);
        var state32 = adam32.State().ToDictionary(s => s.Name, s => s.Tensor);
        foreach (var (moment, signed) in new[] { ("m", true), ("v", false) })
        {
            var code = Codebooks.Dynamic(signed);
            double halfGap = code.Zip(code.Skip(1), (a, b) => (b - a) / 2.0).Max();
            using var codeT = tensor(code);
            using var deq = Blockwise.Dequantize(state8[$"{moment}8.0.codes"], state8[$"{moment}8.0.absmax"], codeT, AdamW8bit.BlockSize);
            using var absmax = state8[$"{moment}8.0.absmax"].repeat_interleave(AdamW8bit.BlockSize).narrow(0, 0, n);
            using var excess = (deq - state32[$"{moment}.0"]).abs() - absmax * (3 * halfGap) - 1e-7;
            Assert.True(excess.max().item<float>() <= 0, $"{moment}: 8-bit moment drifts beyond its bound by {excess.max().item<float>()}");
        }
        Assert.Equal(ScalarType.Byte, state8["m8.0.codes"].dtype);
    }

    [Fact]
    public void SavedStateContinuesBitForBit()
    {
        var (p1, g1) = Param(700, 2);
        var (p2, g2) = Param(700, 2);
        using var a = new AdamW8bit([(p1, g1)]);
        using var b = new AdamW8bit([(p2, g2)]);
        for (int s = 1; s <= 2; s++) { Grad(g1, s); Grad(g2, s); a.Step(1e-2); b.Step(1e-2); }
        var saved = a.State().ToDictionary(s => s.Name, s => s.Tensor.clone());
        var (p3, g3) = Param(700, 99);
        p3.copy_(p1);
        using var resumed = new AdamW8bit([(p3, g3)]);
        resumed.LoadState(name => saved[name].clone(), a.StepCount);
        Grad(g2, 3); Grad(g3, 3);
        b.Step(1e-2); resumed.Step(1e-2);
        Assert.True(p2.equal(p3).all().item<bool>());
    }
}
