using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Training;

public class AdamWTests
{
    /// <summary>torch.optim.AdamW's single-tensor algorithm, written out value by value in double: the reference.</summary>
    static void ReferenceStep(double[] p, double[] g, double[] m, double[] v, int step, double lr, double b1, double b2, double eps, double wd)
    {
        double bias1 = 1 - Math.Pow(b1, step), bias2Sqrt = Math.Sqrt(1 - Math.Pow(b2, step));
        for (int i = 0; i < p.Length; i++)
        {
            p[i] *= 1 - lr * wd;
            m[i] += (g[i] - m[i]) * (1 - b1);
            v[i] = v[i] * b2 + (1 - b2) * g[i] * g[i];
            p[i] -= lr / bias1 * m[i] / (Math.Sqrt(v[i]) / bias2Sqrt + eps);
        }
    }

    [Fact]
    public void StepsFollowTorchsAdamWDefinition()
    {
        _ = TestPaths.Cpu;
        const int n = 37;
        var rng = new Random(11);
        double[] p = Enumerable.Range(0, n).Select(_ => rng.NextDouble() * 2 - 1).ToArray();
        double[] m = new double[n], v = new double[n];
        using var value = tensor(p, float64);
        using var grad = zeros([n], float64);
        using var adamw = new AdamW([(value, grad)], beta1: 0.85, beta2: 0.99, eps: 1e-6, weightDecay: 0.05);
        for (int step = 1; step <= 5; step++)
        {
            // Gradients of mixed sign and scale, some zero: the moments' bias correction and eps both matter.
            double[] g = Enumerable.Range(0, n).Select(i => i % 7 == 0 ? 0 : (rng.NextDouble() - 0.5) * Math.Pow(10, i % 4 - 2)).ToArray();
            using (var gt = tensor(g, float64)) grad.copy_(gt);
            double lr = 1e-2 / step;
            adamw.Step(lr);
            ReferenceStep(p, g, m, v, step, lr, 0.85, 0.99, 1e-6, 0.05);
            double[] ours = value.data<double>().ToArray();
            for (int i = 0; i < n; i++)
                Assert.True(Math.Abs(ours[i] - p[i]) <= 1e-12 * Math.Max(1, Math.Abs(p[i])), $"step {step}, value {i}: {ours[i]} against {p[i]}");
        }
        Assert.Equal(5, adamw.StepCount);
    }
}
