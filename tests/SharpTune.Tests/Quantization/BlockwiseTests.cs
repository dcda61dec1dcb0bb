using SharpTune.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Tests.Quantization;

public class BlockwiseTests
{
    /// <summary>The 8-bit AdamW kernel (Models/TrainingKernels.cu, nearest_code) finds a value's code as order[number of
    /// midpoints below it], by binary search over <see cref="Blockwise.Midpoints"/>. That search, written out here, gives
    /// <see cref="Blockwise.Nearest"/>'s index for every code (sorted with repeated zeros, and FP4's unsorted one) at
    /// exact midpoints (the lower code), just beside them, at the codes and beyond ±1.</summary>
    [Fact]
    public void SearchingTheMidpointsGivesNearestsCode()
    {
        _ = TestPaths.Cpu;
        foreach (var (name, code) in new[] { ("signed dynamic", Codebooks.Dynamic(signed: true)), ("unsigned dynamic", Codebooks.Dynamic(signed: false)),
                     ("nf4", Codebooks.Nf4), ("fp4", Codebooks.Fp4) })
        {
            using var scope = NewDisposeScope();
            var codeT = tensor(code);
            var (midsT, orderT) = Blockwise.Midpoints(codeT);
            var mids = midsT.data<float>().ToArray();
            var order = orderT.data<byte>().ToArray();
            var values = mids.SelectMany(m => new[] { m, MathF.BitDecrement(m), MathF.BitIncrement(m) }).Concat(code).Concat([-2f, -1f, 0f, 1f, 2f]).ToArray();
            var expected = Blockwise.Nearest(tensor(values), codeT).data<byte>().ToArray();
            for (int i = 0; i < values.Length; i++)
            {
                int lo = 0, hi = mids.Length;
                while (lo < hi)
                {
                    int mid = (lo + hi) / 2;
                    if (mids[mid] < values[i]) lo = mid + 1; else hi = mid;
                }
                Assert.True(expected[i] == order[lo], $"{name}: {values[i]:R} takes code {expected[i]}, the search gives {order[lo]}");
            }
        }
    }
}
