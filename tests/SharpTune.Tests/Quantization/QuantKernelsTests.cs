using SharpTune.Quantization;
using static TorchSharp.torch;

namespace SharpTune.Tests.Quantization;

/// <summary>The CUDA kernels themselves are checked on the GPU (`bench dequant-check`, bit for bit against the stock
/// ops); here: they ship inside the library, and off CUDA every caller takes the stock-op path.</summary>
public class QuantKernelsTests
{
    [Theory]
    [InlineData("SharpTune.Quantization.QuantKernels.cu", "qk_dequantize_4bit")]
    [InlineData("SharpTune.Quantization.QuantKernels.cu", "qk_gather_host_rows")]
    [InlineData("SharpTune.Runtime.DeviceMemory.cu", "dm_stats")]
    [InlineData("SharpTune.Runtime.DeviceMemory.cu", "dm_device_memory")]
    [InlineData("SharpTune.Models.TrainingKernels.cu", "st_cross_entropy_inplace")]
    [InlineData("SharpTune.Models.RopePairs.cu", "st_rope_pairs")]
    public void TheCudaSourcesAreEmbedded(string resource, string symbol)
    {
        using var stream = typeof(QuantKernels).Assembly.GetManifestResourceStream(resource);
        Assert.NotNull(stream);
        Assert.Contains(symbol, new StreamReader(stream).ReadToEnd());
    }

    [Fact]
    public void OnTheCpuTheStockPathIsUsed()
    {
        _ = TestPaths.Cpu;
        Assert.False(QuantKernels.Available(CPU));
        using var w = FourBitWeight.Quantize("w", randn([16, 64], float32) * 0.02, "nf4");
        using var dense = w.Dense(float32);
        using var stock = w.DenseStock(float32);
        Assert.True(dense.equal(stock).all().item<bool>());
    }
}
