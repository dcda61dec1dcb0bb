using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>Rotary position embeddings, computed as HF transformers does (fp32 frequencies, cos/sin cast
/// to the activation dtype, the rotate-half layout).</summary>
public static class Rope
{
    /// <summary>inv_freq[i] = θ^(-2i/D), with the config's frequency scaling applied. [D/2] fp32 on the CPU.</summary>
    public static Tensor InverseFrequencies(ModelConfig c)
    {
        using var scope = NewDisposeScope();
        int dim = c.HeadDim;
        var exponent = arange(0, dim, 2, dtype: int64).to(float32) / dim;
        var invFreq = tensor((float)c.RopeTheta, float32).pow(exponent).reciprocal();
        var s = c.RopeScaling;
        if (s is { Type: "linear" }) invFreq = invFreq / s.Factor;
        if (s is { Type: "llama3" })
        {
            // Llama 3.1: long wavelengths are divided by Factor, short ones kept, the band between blended.
            double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
            double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
            var wavelen = 2 * Math.PI / invFreq;
            var scaled = where(wavelen > lowWavelen, invFreq / s.Factor, invFreq);
            var smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
            var blended = (1 - smooth) * scaled / s.Factor + smooth * scaled;
            var medium = (wavelen < highWavelen).logical_not().logical_and((wavelen > lowWavelen).logical_not());
            invFreq = where(medium, blended, scaled);
        }
        return invFreq.MoveToOuterDisposeScope();
    }

    /// <summary>cos and the signed sin [B, T, D] for the given positions [B, T]. The sin's first half is negated
    /// (exactly), so that rotate_half(x)·sin = roll(x, D/2)·signed sin: one kernel instead of a negation and a concatenation.</summary>
    public static (Tensor Cos, Tensor SignedSin) CosSin(Tensor invFreq, Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var freqs = positions.to(float32).unsqueeze(-1) * invFreq;   // [B, T, D/2]
        var emb = cat([freqs, freqs], -1);                           // [B, T, D]
        var sin = emb.sin().to(dtype);
        sin.narrow(-1, 0, freqs.shape[^1]).neg_();
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>x rotated by position: x·cos + rotate_half(x)·sin, with rotate_half(x) = (−x₂, x₁) computed as
    /// roll(x, D/2)·signed sin. cos and sin broadcast over the heads ([B, 1, T, D] for x (B, heads, T, D), or
    /// [B, T, 1, D] for x (B, T, heads, D)).</summary>
    /// <param name="training">in the (B, T, heads, D) layout on CUDA: one fused kernel forward and one backward
    /// (<see cref="TrainingKernels"/>) instead of four and about five</param>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor signedSin, bool training = false)
    {
        if (training && TrainingKernels.Available(x.device, x.dtype) && TrainingKernels.RopeFits(x, cos, signedSin))
            return TrainingKernels.Rope(x, cos, signedSin);
        if (InferenceKernels.TryRope(x, cos, signedSin) is { } fused) return fused;   // one kernel where autograd is off (CUDA)
        using var scope = NewDisposeScope();
        return (x * cos + x.roll(x.shape[^1] / 2, -1) * signedSin).MoveToOuterDisposeScope();
    }
}
