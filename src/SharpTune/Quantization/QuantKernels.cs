using System.Runtime.InteropServices;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Quantization;

/// <summary>
/// Fused CUDA kernels for the quantized weights (QuantKernels.cu, compiled on first use): a 4-bit weight (packed
/// bytes + double-quantized absmax) or an int8 weight expands to the compute dtype in one launch, where the stock
/// torch ops take five (byte→int32, a table lookup, the absmax's own dequantization, products). Their results equal
/// the stock ops' bit for bit (checked on the GPU by `bench dequant-check`). Also a lookup of rows from a table in
/// pinned host memory, read by the GPU over the bus (the embedding of a quantized model stays off the GPU).
/// Where the kernels cannot be built (CPU, no nvcc), every caller keeps the stock-op path; <see cref="Unavailable"/> says why.
/// </summary>
public static unsafe class QuantKernels
{
    static readonly Lock Gate = new();
    static bool _tried;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, float, long, long, long, long, int, IntPtr> _fourBit;
    static delegate* unmanaged<IntPtr, IntPtr, int, IntPtr> _int8;
    static delegate* unmanaged<IntPtr, IntPtr, IntPtr> _gather;
    static delegate* unmanaged<IntPtr> _lastError;

    /// <summary>Why the kernels are not in use; null when they are (or before the first CUDA use).</summary>
    public static string? Unavailable { get; private set; }

    /// <summary>Whether the kernels serve tensors on <paramref name="device"/>; the first CUDA call builds them (about a
    /// minute, once per machine), telling <paramref name="onBuild"/>.</summary>
    public static bool Available(Device device, Action<string>? onBuild = null)
    {
        if (device.type != DeviceType.CUDA) return false;
        lock (Gate)
        {
            if (!_tried)
            {
                _tried = true;
                using var stream = typeof(QuantKernels).Assembly.GetManifestResourceStream("SharpTune.Quantization.QuantKernels.cu")
                    ?? throw new InvalidOperationException("QuantKernels.cu is not embedded");
                var ext = CudaExtension.Load("sharptune_quant", new StreamReader(stream).ReadToEnd(), out string why, onBuild);
                if (ext is null) Unavailable = why;
                else
                {
                    _fourBit = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, float, long, long, long, long, int, IntPtr>)ext.Function("qk_dequantize_4bit");
                    _int8 = (delegate* unmanaged<IntPtr, IntPtr, int, IntPtr>)ext.Function("qk_dequantize_int8");
                    _gather = (delegate* unmanaged<IntPtr, IntPtr, IntPtr>)ext.Function("qk_gather_host_rows");
                    _lastError = (delegate* unmanaged<IntPtr>)ext.Function("qk_last_error");
                }
            }
            return Unavailable is null;
        }
    }

    /// <summary>One line for the run's log: which dequantization a quantized model on <paramref name="device"/> uses.</summary>
    public static string Describe(Device device, Action<string>? onBuild = null) => Available(device, onBuild)
        ? "dequantization: fused CUDA kernel (one launch per weight)"
        : $"dequantization: stock torch ops, slower ({Unavailable})";

    /// <summary>A 4-bit weight as dense [out, in] in <paramref name="dtype"/>.</summary>
    public static Tensor FourBit(FourBitWeight w, ScalarType dtype)
    {
        var s = w.Absmax;
        IntPtr result = s.DoubleQuantized
            ? _fourBit(w.Packed.Handle, w.Code.Handle, s.Codes!.Handle, s.NestedAbsmax!.Handle, s.NestedCode!.Handle, s.Offset, s.NestedBlockSize,
                w.BlockSize, w.OutFeatures, w.InFeatures, (int)dtype)
            : _fourBit(w.Packed.Handle, w.Code.Handle, s.Plain!.Handle, IntPtr.Zero, IntPtr.Zero, 0, 0, w.BlockSize, w.OutFeatures, w.InFeatures, (int)dtype);
        return Wrap(result, "4-bit dequantization");
    }

    /// <summary>An int8 weight as dense [out, in] in <paramref name="dtype"/>.</summary>
    public static Tensor Int8(Int8Weight w, ScalarType dtype) => Wrap(_int8(w.Values.Handle, w.Scale.Handle, (int)dtype), "int8 dequantization");

    /// <summary>Rows <paramref name="ids"/> [N] (int64, on the GPU) of <paramref name="table"/> [V, H] (pinned host memory) → [N, H] on the GPU.</summary>
    public static Tensor GatherHostRows(Tensor table, Tensor ids) => Wrap(_gather(table.Handle, ids.Handle), "host embedding lookup");

    static Tensor Wrap(IntPtr handle, string what)
    {
        if (handle == IntPtr.Zero)
            throw new InvalidOperationException($"{what} kernel: {Marshal.PtrToStringUTF8(_lastError())}");
        return Tensor.UnsafeCreateTensor(handle);
    }
}
