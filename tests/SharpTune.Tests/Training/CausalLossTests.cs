using SharpTune.Models;
using SharpTune.Peft;
using SharpTune.Quantization;
using SharpTune.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Tests.Training;

/// <summary>The chunked loss's explicit cross-entropy gradient against autograd through libtorch's cross_entropy (the
/// path it replaced): same loss and same gradient of the logits, with ignored rows, on the CPU.</summary>
public class CausalLossTests
{
    static (Tensor Logits, Tensor Target) Case(ScalarType dtype)
    {
        var g = new Generator(11);
        var logits = (randn([37, 101], generator: g) * 4).to(dtype);
        var target = randint(0, 101, [37], generator: g);
        foreach (int row in new[] { 0, 5, 6, 36 }) target[row] = CausalLoss.IgnoreIndex;   // prompt tokens and the end
        return (logits, target);
    }

    static (double Loss, Tensor Grad) Autograd(Tensor logits, Tensor target, double normalizer)
    {
        var x = logits.detach().requires_grad_(true);
        var loss = F.cross_entropy(x.to(float32), target, ignore_index: CausalLoss.IgnoreIndex, reduction: nn.Reduction.Sum);
        (loss / normalizer).backward();
        return (loss.item<float>(), x.grad!.detach());
    }

    /// <summary>fp32: loss within 1e-6 relative, gradient within 1e-6 of its largest value (rounding order only).</summary>
    [Fact]
    public void ExplicitGradientEqualsAutogradsInFloat32()
    {
        _ = TestPaths.Cpu;   // libtorch loads through TorchRuntime before any torch member is touched
        using var scope = NewDisposeScope();
        var (logits, target) = Case(float32);
        var (refLoss, refGrad) = Autograd(logits, target, 23);
        var (loss, grad) = CausalLoss.CrossEntropyWithGradient(logits.clone(), target, 23);
        Assert.True(Math.Abs(loss.item<float>() - refLoss) <= 1e-6 * refLoss, $"loss {loss.item<float>()} vs {refLoss}");
        double scale = refGrad.abs().max().item<float>();
        double diff = (grad - refGrad).abs().max().item<float>();
        Assert.True(diff <= 1e-6 * scale, $"max |Δgrad| {diff:E2} vs max |grad| {scale:E2}");
        Assert.Equal(0, grad[5].abs().max().item<float>());                  // an ignored row has no gradient
        Assert.True(Math.Abs(grad[1].sum().item<float>()) <= 1e-6 * scale);   // a scored row's gradient sums to 0 (softmax − onehot)
    }

    /// <summary>bf16 logits: both compute in fp32 and round the gradient to bf16 once, so they differ by at most one
    /// bf16 step (at most 2⁻⁷ of the value) where the fp32 values straddle a rounding boundary.</summary>
    [Fact]
    public void ExplicitGradientEqualsAutogradsInBFloat16()
    {
        _ = TestPaths.Cpu;   // libtorch loads through TorchRuntime before any torch member is touched
        using var scope = NewDisposeScope();
        var (logits, target) = Case(bfloat16);
        var (refLoss, refGrad) = Autograd(logits, target, 23);
        var (loss, grad) = CausalLoss.CrossEntropyWithGradient(logits.clone(), target, 23);
        Assert.Equal(ScalarType.BFloat16, grad.dtype);
        Assert.True(Math.Abs(loss.item<float>() - refLoss) <= 1e-6 * refLoss, $"loss {loss.item<float>()} vs {refLoss}");
        var r = refGrad.to(float32);
        double diff = ((grad.to(float32) - r).abs() - r.abs() * Math.Pow(2, -7)).max().item<float>();
        Assert.True(diff <= 1e-12, $"a gradient differs by more than one bf16 step: excess {diff:E2}");
    }
}

/// <summary>lm_head_quantization: int8 against the dense path over the same (dequantized) weights, on the CPU in fp32:
/// the slice-by-slice logits and loss (slices that do not divide the vocabulary), and a whole training step's loss and
/// adapter gradients. Tolerances: 1e-6 relative for losses and logits, 1e-5 of the largest gradient (the slices' sums
/// in another order).</summary>
public class CompressedHeadTests
{
    static readonly Lazy<string> Tiny = new(() => TestPaths.NewTinyModel(seed: 4));

    static CausalLM Load()
    {
        using var folder = ModelFolder.Open(Tiny.Value);
        return folder.LoadModel(TestPaths.Cpu, float32);
    }

    /// <summary>The dense model with its lm_head replaced by the int8 head's expansion: the existing path's reference.</summary>
    static (CausalLM Compressed, CausalLM Dense) Pair()
    {
        var compressed = Load();
        compressed.CompressHead(Int8Weight.Quantize, "lm_head_quantization");
        var dense = Load();
        using (no_grad()) using (var expanded = compressed.CompressedHead!.Dense(float32)) dense.LmHead.copy_(expanded);
        return (compressed, dense);
    }

    [Fact]
    public void SlicedLogitsEqualTheDenseProduct()
    {
        var (compressed, dense) = Pair();
        using (compressed) using (dense)
        using (var scope = NewDisposeScope())
        {
            Assert.IsType<Int8Weight>(compressed.CompressedHead);
            var x = randn([9, compressed.Config.HiddenSize], generator: new Generator(2));
            var logits = CausalLoss.Logits(compressed, x, sliceRows: 100);
            var expected = F.linear(x, dense.LmHead);
            Assert.True((logits - expected).abs().max().item<float>() <= 1e-6 * expected.abs().max().item<float>());
            // Generation reads the dense form, inside ExpandHead only (training must not hold it by accident).
            Assert.Throws<InvalidOperationException>(() => compressed.LmHead);
            using (compressed.ExpandHead())
                Assert.Equal(0, (compressed.LmHead - dense.LmHead).abs().max().item<float>());
            Assert.Throws<InvalidOperationException>(() => compressed.LmHead);
        }
    }

    /// <summary>The two passes over slices (running logsumexp, then the gradient slice by slice) against the whole
    /// vocabulary's cross-entropy and gradient: slices that do not divide the vocabulary, ignored rows, targets in the
    /// first and last slice.</summary>
    [Fact]
    public void SlicedCrossEntropyEqualsTheWholeVocabularys()
    {
        var (compressed, dense) = Pair();
        using (compressed) using (dense)
        using (var scope = NewDisposeScope())
        {
            long vocab = dense.Config.VocabSize;
            var x = randn([11, dense.Config.HiddenSize], generator: new Generator(8));
            var target = randint(0, vocab, [11], generator: new Generator(9));
            target[0] = CausalLoss.IgnoreIndex; target[1] = 0; target[2] = vocab - 1;
            var (refLoss, refGradLogits) = CausalLoss.CrossEntropyWithGradient(F.linear(x, dense.LmHead), target, 7);
            var refGrad = refGradLogits.matmul(dense.LmHead);
            foreach (var model in new[] { compressed, dense })
            {
                var (loss, grad) = CausalLoss.SlicedCrossEntropy(model, x, target, 7, sliceRows: 100);
                Assert.True(Math.Abs(loss.item<float>() - refLoss.item<float>()) <= 1e-6 * refLoss.item<float>(), $"loss {loss.item<float>()} vs {refLoss.item<float>()}");
                double scale = refGrad.abs().max().item<float>();
                Assert.True((grad - refGrad).abs().max().item<float>() <= 1e-5 * scale);
                Assert.Equal(0, grad[0].abs().max().item<float>());   // the ignored row
            }
        }
    }

    [Fact]
    public void TrainingStepGivesTheDensePathsLossAndGradients()
    {
        var (compressed, dense) = Pair();
        using (compressed) using (dense)
        {
            (float, Tensor) Step(CausalLM model)
            {
                using var adapter = LoraAdapter.Attach(model, new LoraOptions(Rank: 4, Alpha: 8), seed: 1);
                using (no_grad()) foreach (var p in adapter.Pairs) p.B.normal_(0, 0.05, generator: new Generator((ulong)p.Target.Name.Length));
                using var scope = NewDisposeScope();
                var ids = randint(3, model.Config.VocabSize, [2, 24], generator: new Generator(5));
                var loss = CausalLoss.ForwardBackward(model, ids, ids, normalizer: 46, chunk: 16, headSlice: 100);
                return (loss.item<float>(), adapter.Gradients.clone().DetachFromDisposeScope());
            }
            var (loss, grads) = Step(compressed);
            var (denseLoss, denseGrads) = Step(dense);
            using (grads) using (denseGrads)
            {
                Assert.True(Math.Abs(loss - denseLoss) <= 1e-6 * denseLoss, $"loss {loss} vs {denseLoss}");
                double scale = denseGrads.abs().max().item<float>();
                Assert.True(scale > 0);
                Assert.True((grads - denseGrads).abs().max().item<float>() <= 1e-5 * scale);
            }
        }
    }

    /// <summary>lm_head compressed while loading (read into host memory, quantized a block of rows at a time on the model's
    /// device, so that the dense head never takes GPU memory) equals the head compressed after a dense load, exactly.</summary>
    [Fact]
    public void AHeadCompressedWhileLoadingEqualsOneCompressedAfterLoading()
    {
        var (compressed, dense) = Pair();
        using (compressed) using (dense)
        using (var folder = ModelFolder.Open(Tiny.Value))
        using (var loaded = folder.LoadModel(TestPaths.Cpu, float32, compressHead: w => Int8Weight.Quantize(w, TestPaths.Cpu)))
        {
            var (a, b) = ((Int8Weight)loaded.CompressedHead!, (Int8Weight)compressed.CompressedHead!);
            Assert.Equal(0, a.Values.ne(b.Values).sum().item<long>());
            Assert.Equal(0, a.Scale.ne(b.Scale).sum().item<long>());
            Assert.Throws<InvalidOperationException>(() => loaded.LmHead);   // no dense head is left
        }
    }

    [Fact]
    public void AnLmHeadTiedToTheEmbeddingIsRefused()
    {
        using var folder = ModelFolder.Open(TestPaths.Model("qwen2"));
        using var model = folder.LoadModel(TestPaths.Cpu, float32);
        var e = Assert.Throws<SharpTuneException>(() => model.CompressHead(Int8Weight.Quantize, "lm_head_quantization"));
        Assert.Contains("lm_head_quantization", e.Message);
        Assert.Contains("tie_word_embeddings", e.Message);
        var whileLoading = Assert.Throws<SharpTuneException>(() => folder.LoadModel(TestPaths.Cpu, float32, compressHead: Int8Weight.Quantize));
        Assert.Contains("tie_word_embeddings", whileLoading.Message);
    }
}
