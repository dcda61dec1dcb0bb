using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Models;

/// <summary>Packed rows for attention by document: the B·T tokens of a batch, flattened, cut into consecutive
/// documents (a row's padding is a document of its own). <see cref="CuSeqLens"/> [documents + 1] int32 holds the
/// cumulative lengths (0 first, B·T last), on the model's device; <see cref="MaxLength"/> is the longest document.</summary>
public sealed record PackedDocuments(Tensor CuSeqLens, int MaxLength)
{
    /// <summary>The layout of rows [B, T] whose documents have the given lengths (row by row, padding left out).</summary>
    public static (int[] CuSeqLens, int MaxLength) Layout(int rows, int length, IReadOnlyList<int[]> documentLengths)
    {
        var cu = new List<int> { 0 };
        int max = 0;
        for (int r = 0; r < rows; r++)
        {
            int used = 0;
            foreach (int n in documentLengths[r]) { cu.Add(cu[^1] + n); used += n; max = Math.Max(max, n); }
            if (used < length) { cu.Add(cu[^1] + length - used); max = Math.Max(max, length - used); }
        }
        return (cu.ToArray(), max);
    }

    /// <summary>The equivalent dense mask [B, 1, T, T] (bool): causal within each document. The fallback where the
    /// varlen kernel is unavailable (CPU, fp32, no flash build).</summary>
    public Tensor ToMask(long batch, long length)
    {
        using var scope = NewDisposeScope();
        var lengths = CuSeqLens.diff().to(int64);
        var segment = arange(lengths.shape[0], dtype: int64, device: CuSeqLens.device).repeat_interleave(lengths).view(batch, length);
        var same = segment.unsqueeze(2) == segment.unsqueeze(1);                                    // [B, T, T]
        var causal = ones([length, length], ScalarType.Bool, CuSeqLens.device).tril();
        return (same & causal).unsqueeze(1).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Flash attention through libtorch's own kernel (aten::_flash_attention_forward, the one behind SDPA's flash backend),
/// reached through TorchScript because TorchSharp binds neither its grouped-query form (K/V heads shared, no copies)
/// nor its varlen form (documents given by cumulative lengths, no T×T mask). Autograd differentiates it with
/// aten::_flash_attention_backward. Checked once per process against SDPA on a small packed input; where the kernel
/// is missing or disagrees (CPU, fp32, a PyTorch build without flash), <see cref="Available"/> is false and the
/// model uses SDPA (with a block-diagonal mask for packed rows). SHARPTUNE_ATTENTION=sdpa turns it off.
/// </summary>
public static class FlashAttention
{
    const string Script = """
        def dense(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            return torch._flash_attention_forward(q, k, v, None, None, q.size(1), k.size(1), 0.0, True, False)[0]

        def varlen(q: Tensor, k: Tensor, v: Tensor, cu: Tensor, max_len: int) -> Tensor:
            return torch._flash_attention_forward(q, k, v, cu, cu, max_len, max_len, 0.0, True, False)[0]

        """;   // TorchScript's parser wants the source to end with a newline

    static readonly Lock Gate = new();
    static jit.CompilationUnit? _unit;
    static bool? _available;

    /// <summary>Why the kernel is not used (null while unchecked or when it is used).</summary>
    public static string? Unavailable { get; private set; }

    /// <summary>Whether attention for <paramref name="dtype"/> on <paramref name="device"/> runs on the flash kernel;
    /// the first call on a CUDA device compiles and checks it (a few milliseconds).</summary>
    public static bool Available(Device device, ScalarType dtype)
    {
        if (device.type != DeviceType.CUDA || dtype is not (ScalarType.BFloat16 or ScalarType.Float16)) return false;
        lock (Gate)
        {
            _available ??= Check(device);
            return _available.Value;
        }
    }

    /// <summary>Causal attention over full rows. q (B, T, nh, hd), k and v (B, T, nkv, hd) → (B, T, nh, hd).</summary>
    public static Tensor Dense(Tensor q, Tensor k, Tensor v) => (Tensor)_unit!.invoke("dense", q, k, v);

    /// <summary>Causal attention within documents. q (N, nh, hd), k and v (N, nkv, hd), N = B·T → (N, nh, hd).</summary>
    public static Tensor Varlen(Tensor q, Tensor k, Tensor v, PackedDocuments documents) =>
        (Tensor)_unit!.invoke("varlen", q, k, v, documents.CuSeqLens, documents.MaxLength);

    /// <summary>The TorchScript functions (compiling resolves the op's schema, also where no GPU is).</summary>
    internal static jit.CompilationUnit Compile() => jit.compile(Script);

    static bool Check(Device device)
    {
        if (Environment.GetEnvironmentVariable("SHARPTUNE_ATTENTION") is "sdpa")
        {
            Unavailable = "SHARPTUNE_ATTENTION=sdpa";
            return false;
        }
        try
        {
            _unit = Compile();
            using var scope = NewDisposeScope();
            // Two documents of 40 and 24 tokens in one row, 4 query heads sharing 2 K/V heads: the kernel against
            // SDPA per document, values and the query's gradient.
            int[] lengths = [40, 24];
            int n = lengths.Sum(), nh = 4, nkv = 2, hd = 64;
            var q = randn([n, nh, hd], bfloat16, device).requires_grad_(true);
            var k = randn([n, nkv, hd], bfloat16, device);
            var v = randn([n, nkv, hd], bfloat16, device);
            var cu = tensor(new[] { 0, lengths[0], n }, int32, device);
            var fast = Varlen(q, k, v, new PackedDocuments(cu, lengths.Max()));
            var gFast = autograd.grad([fast.to(float32).pow(2).sum()], [q])[0];
            var qf = q.detach().to(float32).requires_grad_(true);
            var parts = new List<Tensor>();
            int start = 0;
            foreach (int len in lengths)
            {
                Tensor Heads(Tensor t) => t.narrow(0, start, len).to(float32).transpose(0, 1).unsqueeze(0);   // (1, h, len, hd)
                var kr = Heads(k).repeat_interleave(nh / nkv, 1);
                var vr = Heads(v).repeat_interleave(nh / nkv, 1);
                parts.Add(F.scaled_dot_product_attention(Heads(qf), kr, vr, is_casual: true).squeeze(0).transpose(0, 1));
                start += len;
            }
            var reference = cat(parts, 0);
            var gRef = autograd.grad([reference.pow(2).sum()], [qf])[0];
            double Rel(Tensor a, Tensor b) => ((a.to(float32) - b).norm() / b.norm()).item<float>();
            double errOut = Rel(fast, reference), errGrad = Rel(gFast, gRef);
            if (errOut > 2e-2 || errGrad > 5e-2 || double.IsNaN(errOut) || double.IsNaN(errGrad))
            {
                Unavailable = $"the flash kernel disagrees with SDPA (relative error {errOut:g2} in values, {errGrad:g2} in gradients)";
                return false;
            }
            return true;
        }
        catch (Exception e)
        {
            Unavailable = $"the flash kernel is not usable here ({e.Message.Split('\n')[0].Trim()})";
            return false;
        }
    }
}
