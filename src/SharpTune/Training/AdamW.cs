using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>
/// AdamW with decoupled weight decay, exactly as torch.optim.AdamW computes it (non-fused):
///   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
///   p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
/// Its state (m, v, t) is plain tensors, saved with a checkpoint for an exact resume.
/// </summary>
public sealed class AdamW : IOptimizer
{
    readonly IReadOnlyList<(Tensor Value, Tensor Grad)> _params;
    readonly Tensor[] _m, _v;
    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }
    public double WeightDecay { get; }
    public int StepCount { get; private set; }

    /// <param name="parameters">each trainable tensor with the tensor its gradient accumulates into</param>
    public AdamW(IReadOnlyList<(Tensor Value, Tensor Grad)> parameters, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01)
    {
        _params = parameters;
        Beta1 = beta1; Beta2 = beta2; Eps = eps; WeightDecay = weightDecay;
        _m = parameters.Select(p => zeros_like(p.Value).DetachFromDisposeScope()).ToArray();
        _v = parameters.Select(p => zeros_like(p.Value).DetachFromDisposeScope()).ToArray();
    }

    public void Step(double lr)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        StepCount++;
        for (int i = 0; i < _params.Count; i++)
            Update(_params[i].Value, _params[i].Grad, _m[i], _v[i], lr, StepCount, Beta1, Beta2, Eps, WeightDecay);
    }

    /// <summary>Step <paramref name="step"/> (from 1) of the update above: p, m and v change in place. Shared with
    /// <see cref="AdamW8bit"/>, which keeps m and v in 8 bits between steps and hands their fp32 form here.</summary>
    internal static void Update(Tensor p, Tensor g, Tensor m, Tensor v, double lr, int step, double beta1, double beta2, double eps, double weightDecay)
    {
        double bias1 = 1 - Math.Pow(beta1, step);
        double bias2Sqrt = Math.Sqrt(1 - Math.Pow(beta2, step));
        if (weightDecay != 0) p.mul_(1 - lr * weightDecay);
        m.lerp_(g, 1 - beta1);
        v.mul_(beta2).addcmul_(g, g, 1 - beta2);
        using var denom = (v.sqrt() / bias2Sqrt).add_(eps);
        p.addcdiv_(m, denom, -lr / bias1);
    }

    public void ZeroGrad()
    {
        foreach (var (_, g) in _params) g.zero_();
    }

    /// <summary>The state to save: m and v per parameter, by index; the step count goes with the train state.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State() =>
        _m.Select((t, i) => ($"m.{i}", t)).Concat(_v.Select((t, i) => ($"v.{i}", t)));

    public void LoadState(Func<string, Tensor> read, int stepCount)
    {
        using var noGrad = no_grad();
        for (int i = 0; i < _params.Count; i++)
        {
            using var m = read($"m.{i}");
            using var v = read($"v.{i}");
            if (!m.shape.SequenceEqual(_m[i].shape) || !v.shape.SequenceEqual(_v[i].shape))
                throw new SharpTuneException($"optimizer state 'm.{i}' / 'v.{i}' has shape [{string.Join(", ", m.shape)}], expected [{string.Join(", ", _m[i].shape)}]");
            _m[i].copy_(m);
            _v[i].copy_(v);
        }
        StepCount = stepCount;
    }

    public void Dispose()
    {
        foreach (var t in _m.Concat(_v)) t.Dispose();
    }
}
