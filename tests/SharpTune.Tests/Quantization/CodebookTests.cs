using MathNet.Numerics.Distributions;
using SharpTune.Quantization;

namespace SharpTune.Tests.Quantization;

public class CodebookTests
{
    /// <summary>QLoRA's appendix E table of the 16 NF4 values, as printed in the paper.</summary>
    static readonly double[] PaperTable =
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
        -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ];

    [Fact]
    public void Nf4IsThePapersTableAndItsDefinition()
    {
        Assert.Equal(PaperTable.Select(v => (float)v), Codebooks.Nf4);
        // The definition (QLoRA §3, create_normal_map with offset 0.9677): 8 positive quantiles of N(0,1) over an even
        // split of [0.5, offset], 7 negative ones, and 0; divided by the largest. Tolerance: fp32 rounding of the table.
        const double offset = 0.9677083;
        var positive = Enumerable.Range(0, 8).Select(i => Normal.InvCDF(0, 1, offset + (0.5 - offset) * i / 8.0));
        var negative = Enumerable.Range(0, 7).Select(i => -Normal.InvCDF(0, 1, offset + (0.5 - offset) * i / 7.0));
        var values = positive.Concat(negative).Append(0.0).Order().ToArray();
        double max = values.Max(Math.Abs);
        for (int i = 0; i < 16; i++)
            Assert.True(Math.Abs(values[i] / max - Codebooks.Nf4[i]) < 1e-6, $"NF4[{i}] = {Codebooks.Nf4[i]}, definition gives {values[i] / max}");
    }

    [Fact]
    public void Fp4FollowsItsBitLayout()
    {
        // index = sign·8 + exponent(2 bits)·2 + mantissa; exponent 0 is zero or the subnormal 0.0625; bias 3; over 12.
        for (int idx = 0; idx < 16; idx++)
        {
            int sign = idx >> 3, exp = (idx >> 1) & 3, mantissa = idx & 1;
            double magnitude = exp == 0 ? (mantissa == 0 ? 0 : 0.0625) : Math.Pow(2, -exp + 4) * (mantissa == 1 ? 1.5 : 1.0);
            Assert.Equal((sign == 1 ? -magnitude : magnitude) / 12, Codebooks.Fp4[idx], 7);
        }
    }

    [Fact]
    public void DynamicMapsHave256SortedValuesFromTheirDecades()
    {
        var signed = Codebooks.Dynamic(signed: true);
        var unsigned = Codebooks.Dynamic(signed: false);
        Assert.Equal(256, signed.Length);
        Assert.Equal(256, unsigned.Length);
        Assert.Equal(signed.Order(), signed);
        Assert.Equal(unsigned.Order(), unsigned);
        Assert.Equal(1f, signed[^1]);
        Assert.Equal(1f, unsigned[^1]);
        Assert.Contains(0f, signed);
        Assert.All(unsigned, v => Assert.True(v >= 0));
        // signed: 127 magnitudes mirrored around 0 (2^i midpoints in decade 10^(i-6)), plus 0 and 1
        foreach (var v in signed.Where(v => v > 0 && v < 1)) Assert.Contains(-v, signed);
        Assert.Equal(127, signed.Count(v => v < 0));
        // the top decade of the signed map: 64 midpoints of an even split of [0.1, 1]; the largest is 1 - 0.9/128
        Assert.Equal(1 - 0.9 / 128, signed[^2], 6);
        // the smallest positive value: the single midpoint of decade 10^-6
        Assert.Equal(0.55e-6, signed.Where(v => v > 0).Min(), 9);
        // unsigned: twice as many midpoints per decade (2^(i+1)), so 254 + 0 + 1
        Assert.Equal(1 - 0.9 / 256, unsigned[^2], 6);
        Assert.Equal(0.325e-6, unsigned.Where(v => v > 0).Min(), 9);
    }
}
