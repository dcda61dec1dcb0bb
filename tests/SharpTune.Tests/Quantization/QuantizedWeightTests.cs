using SharpTune.Models;
using SharpTune.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Quantization;

public class QuantizedWeightTests
{
    static Tensor RandomWeight(long outF, long inF, long seed)
    {
        _ = TestPaths.Cpu;
        using var gen = new Generator((ulong)seed);
        return randn([outF, inF], float32, generator: gen) * 0.02;
    }

    static float[] Values(Tensor t) => t.to(float32).contiguous().data<float>().ToArray();

    [Theory]
    [InlineData("nf4")]
    [InlineData("fp4")]
    public void EachValueTakesTheNearestCode(string format)
    {
        using var w = RandomWeight(8, 128, 1);
        using var q = FourBitWeight.Quantize("w", w, format, doubleQuantize: false);
        var code = FourBitWeight.CodeOf(format);
        var x = Values(w);
        var absmax = Values(q.Absmax.Plain!);
        var packed = q.Packed.data<byte>().ToArray();
        for (int i = 0; i < x.Length; i++)
        {
            int index = i % 2 == 0 ? packed[i / 2] >> 4 : packed[i / 2] & 15;
            double normalized = x[i] / absmax[i / 64];
            double best = code.Min(c => Math.Abs(normalized - c));
            Assert.True(Math.Abs(normalized - code[index]) <= best + 1e-7, $"value {i}: index {index} is not the nearest code");
        }
        // each block's absmax is its largest magnitude
        for (int b = 0; b < absmax.Length; b++)
            Assert.Equal(x.Skip(b * 64).Take(64).Max(Math.Abs), absmax[b]);
    }

    [Theory]
    [InlineData("nf4", false)]
    [InlineData("nf4", true)]
    [InlineData("fp4", true)]
    public void RoundTripErrorIsWithinTheFormatsBound(string format, bool doubleQuantize)
    {
        using var w = RandomWeight(64, 256, 2);
        using var q = FourBitWeight.Quantize("w", w, format, doubleQuantize: doubleQuantize);
        using var back = q.Dense(float32);
        var x = Values(w);
        var y = Values(back);
        // A value is off by at most half the widest gap between neighbouring codes, times its block's absmax A; with
        // double quantization the absmax used, Â, differs from A by at most half the dynamic map's widest gap times the
        // nested block's absmax, and |w − ŵ| ≤ A·gap/2 + |A − Â| (|code| ≤ 1). 1e-6: fp32 rounding.
        var sorted = FourBitWeight.CodeOf(format).Order().ToArray();
        double halfGap = sorted.Zip(sorted.Skip(1), (a, b) => (b - a) / 2).Max();
        var trueAbsmax = Enumerable.Range(0, x.Length / 64).Select(b => x.Skip(b * 64).Take(64).Max(Math.Abs)).ToArray();
        using var usedAbsmaxT = q.Absmax.Values();
        var usedAbsmax = Values(usedAbsmaxT);
        double absmaxBound = 0;
        if (doubleQuantize)
        {
            var dyn = Codebooks.Dynamic(signed: true);
            double dynHalfGap = dyn.Zip(dyn.Skip(1), (a, b) => (b - a) / 2.0).Max();
            absmaxBound = Values(q.Absmax.NestedAbsmax!).Max() * dynHalfGap + 1e-7;
            for (int b = 0; b < trueAbsmax.Length; b++)
                Assert.True(Math.Abs(trueAbsmax[b] - usedAbsmax[b]) <= absmaxBound, $"absmax {b}: {trueAbsmax[b]} vs {usedAbsmax[b]}");
        }
        double worst = 0;
        for (int i = 0; i < x.Length; i++)
        {
            double bound = trueAbsmax[i / 64] * halfGap + absmaxBound + 1e-6;
            double err = Math.Abs(x[i] - y[i]);
            Assert.True(err <= bound, $"value {i}: error {err} > bound {bound}");
            worst = Math.Max(worst, err / bound);
        }
        Assert.True(worst > 0.3, $"the bound should be reached in part by random data (worst error/bound {worst})");
        // double quantization stores the absmax in 1 byte instead of 4
        Assert.Equal(doubleQuantize ? ScalarType.Byte : ScalarType.Float32, (q.Absmax.Codes ?? q.Absmax.Plain!).dtype);
    }

    [Fact]
    public void Int8RoundTripIsWithinHalfAStep()
    {
        using var w = RandomWeight(16, 96, 3);
        using var q = Int8Weight.Quantize(w);
        using var back = q.Dense(float32);
        var x = Values(w);
        var y = Values(back);
        for (int r = 0; r < 16; r++)
        {
            double absmax = x.Skip(r * 96).Take(96).Max(Math.Abs);
            for (int c = 0; c < 96; c++)
                Assert.True(Math.Abs(x[r * 96 + c] - y[r * 96 + c]) <= absmax / 254 + 1e-7, $"row {r} col {c}");
        }
    }

    [Fact]
    public void AShapeThatIsNoWholeNumberOfBlocksIsRefusedByName()
    {
        using var w = RandomWeight(3, 10, 4);
        var e = Assert.Throws<SharpTuneException>(() => FourBitWeight.Quantize("model.layers.0.self_attn.q_proj.weight", w, "nf4"));
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", e.Message);
        Assert.Contains("64", e.Message);
    }

    [Fact]
    public void LinearComputesThroughTheDequantizedWeightWithTheAdapterOnTop()
    {
        using var w = RandomWeight(32, 64, 5);
        var q = FourBitWeight.Quantize("w", w, "nf4");
        using var linear = new Linear("w", q, null);
        using var x = RandomWeight(3, 64, 6) * 50;
        using var dense = q.Dense(float32);
        using var expected = x.matmul(dense.t());
        using (var y = linear.Forward(x)) Assert.True(y.allclose(expected, 1e-5, 1e-6));
        linear.Adapter = (input, y) => y + input.sum(-1, keepdim: true).expand(-1, 32);
        using var withAdapter = linear.Forward(x);
        using var expected2 = expected + x.sum(-1, keepdim: true);
        Assert.True(withAdapter.allclose(expected2, 1e-5, 1e-5));
    }
}
