using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Export;

/// <summary>Turns a float32 CPU tensor into the bytes of a ggml type: f32, f16 and bf16 by PyTorch's rounding
/// (round to nearest even), Q8_0 as ggml's reference quantizer does it.</summary>
static class TensorEncoding
{
    /// <summary>The type a weight gets in a file of <paramref name="fileType"/>: 1-D tensors (norms, biases) stay
    /// f32 as llama.cpp's converter keeps them; Q8_0 needs rows that are whole blocks of 32, else f16.</summary>
    public static GgmlType TypeFor(GgmlType fileType, long[] shape) => shape.Length < 2 ? GgmlType.F32
        : fileType == GgmlType.Q8_0 && shape[^1] % 32 != 0 ? GgmlType.F16
        : fileType;

    /// <summary>Writes <paramref name="t"/> in chunks of whole rows (a Span holds at most 2 GB; an 8B model's
    /// embedding is larger), so that at most one chunk's conversion is in memory besides the tensor.</summary>
    public static void Write(Tensor t, GgmlType type, Stream stream)
    {
        var flat = t.dim() < 2 ? t.reshape(1, -1) : t.reshape(-1, t.shape[^1]);
        long rows = flat.shape[0], rowLength = flat.shape[1];
        long rowsPerChunk = Math.Max(1, (1L << 24) / rowLength);
        for (long r = 0; r < rows; r += rowsPerChunk)
        {
            using var scope = NewDisposeScope();
            WriteChunk(flat.narrow(0, r, Math.Min(rowsPerChunk, rows - r)), type, stream);
        }
        flat.Dispose();
    }

    static void WriteChunk(Tensor chunk, GgmlType type, Stream stream)
    {
        var x = chunk.to(float32).cpu().contiguous();
        switch (type)
        {
            case GgmlType.F32: stream.Write(x.bytes); break;
            case GgmlType.F16: stream.Write(x.to(float16).bytes); break;
            case GgmlType.BF16: stream.Write(x.to(bfloat16).bytes); break;
            case GgmlType.Q8_0: WriteQ8_0(x, stream); break;
            default: throw new ArgumentOutOfRangeException(nameof(type));
        }
    }

    /// <summary>Q8_0: each block of 32 values becomes d = max|x|/127 (stored as f16) and q = round(x/d) as int8,
    /// rounded half away from zero (C's roundf) with the f32 scale, as ggml's quantize_row_q8_0_ref.</summary>
    static void WriteQ8_0(Tensor x, Stream stream)
    {
        var blocks = x.reshape(-1, 32);
        var d = blocks.abs().amax([1], keepdim: true) / 127f;                    // [n, 1]
        var inv = where(d == 0, zeros_like(d), d.reciprocal());
        var scaled = blocks * inv;
        var q = (scaled.sign() * (scaled.abs() + 0.5f).floor()).to(int8);       // [n, 32]
        var d16 = d.to(float16);
        var scales = d16.bytes;
        var values = q.bytes;
        long n = blocks.shape[0];
        const int chunk = 4096;                                                  // blocks per write
        var buffer = new byte[chunk * 34];
        for (long b0 = 0; b0 < n; b0 += chunk)
        {
            int count = (int)Math.Min(chunk, n - b0);
            for (int i = 0; i < count; i++)
            {
                long b = b0 + i;
                scales.Slice((int)(b * 2), 2).CopyTo(buffer.AsSpan(i * 34, 2));
                values.Slice((int)(b * 32), 32).CopyTo(buffer.AsSpan(i * 34 + 2, 32));
            }
            stream.Write(buffer, 0, count * 34);
        }
    }
}
