namespace SharpTune.Quantization;

/// <summary>The value tables ("codes") that quantized numbers index into, as bitsandbytes defines them.</summary>
public static class Codebooks
{
    /// <summary>4-bit NormalFloat (QLoRA, Dettmers et al. 2023, appendix E): quantiles of N(0, 1) normalized to
    /// [-1, 1], with an exact zero; index 0..15 as bitsandbytes stores them.</summary>
    public static readonly float[] Nf4 =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>bitsandbytes' FP4 (1 sign, 2 exponent, 1 mantissa bit; index = sign·8 + e·2 + m), normalized by its
    /// largest magnitude 12: 0, 0.0625, 8, 12, 4, 6, 2, 3 and their negatives, over 12.</summary>
    public static readonly float[] Fp4 =
        new[] { 0f, 0.0625f, 8f, 12f, 4f, 6f, 2f, 3f, -0f, -0.0625f, -8f, -12f, -4f, -6f, -2f, -3f }.Select(v => v / 12f).ToArray();

    /// <summary>The 8-bit dynamic tree map (Dettmers 2015; bitsandbytes' create_dynamic_map with 7 exponent bits):
    /// for each decade 10⁻⁶ … 10⁰, fraction values at the midpoints of an even split of [0.1, 1] (2ⁱ of them in
    /// decade i, twice as many unsigned), plus 0 and 1; 256 values sorted ascending. Signed for Adam's first moment
    /// and the double-quantized absmax, unsigned for the second moment.</summary>
    public static float[] Dynamic(bool signed)
    {
        const int exponentBits = 7, nonSignBits = 7;
        var data = new List<float>();
        for (int i = 0; i < exponentBits; i++)
        {
            int fractionItems = signed ? (1 << (i + nonSignBits - exponentBits)) + 1 : (1 << (i + nonSignBits - exponentBits + 1)) + 1;
            double scale = Math.Pow(10, -(exponentBits - 1) + i);
            for (int k = 0; k < fractionItems - 1; k++)
            {
                double lo = 0.1 + 0.9 * k / (fractionItems - 1), hi = 0.1 + 0.9 * (k + 1) / (fractionItems - 1);
                float mean = (float)(scale * (lo + hi) / 2);
                data.Add(mean);
                if (signed) data.Add(-mean);
            }
        }
        data.Add(0f);
        data.Add(1f);
        while (data.Count < 256) data.Add(0f);
        data.Sort();
        return data.ToArray();
    }
}
