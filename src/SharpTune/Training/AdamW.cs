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
        double bias1 = 1 - Math.Pow(Beta1, StepCount);
        double bias2Sqrt = Math.Sqrt(1 - Math.Pow(Beta2, StepCount));
        for (int i = 0; i < _params.Count; i++)
        {
            var (p, g) = _params[i];
            if (WeightDecay != 0) p.mul_(1 - lr * WeightDecay);
            _m[i].lerp_(g, 1 - Beta1);
            _v[i].mul_(Beta2).addcmul_(g, g, 1 - Beta2);
            var denom = (_v[i].sqrt() / bias2Sqrt).add_(Eps);
            p.addcdiv_(_m[i], denom, -lr / bias1);
        }
    }

    public void ZeroGrad()
    {
        foreach (var (_, g) in _params) g.zero_();
    }

    /// <summary>The state to save: m and v per parameter, by index; the step count goes with the train state.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> State() =>
        _m.Select((t, i) => ($"m.{i}", t)).Concat(_v.Select((t, i) => ($"v.{i}", t)));

    /// <summary>The name and shape of each state tensor that <see cref="LoadState"/> reads.</summary>

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
