using SharpTune.Runtime;
using TorchSharp;

namespace SharpTune.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void LoadsCpuLibtorchAndRunsAutograd()
    {
        var device = TorchRuntime.Initialize("cpu");
        Assert.Equal(DeviceType.CPU, device.type);
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new float[] { 1, 2, 3 }).requires_grad_(true);
        (x * x).sum().backward();
        Assert.Equal(new float[] { 2, 4, 6 }, x.grad!.data<float>().ToArray());
    }

    [Fact]
    public void RejectsUnknownDevice()
    {
        var e = Assert.Throws<SharpTuneException>(() => TorchRuntime.Initialize("tpu"));
        Assert.Contains("tpu", e.Message);
    }

    [Fact]
    public void CudaRequestOnMachineWithoutGpuExplainsWhy()
    {
        TorchRuntime.Initialize("cpu");
        var e = Assert.Throws<SharpTuneException>(() => TorchRuntime.Initialize("cuda"));
        Assert.Contains("--device cuda", e.Message);
    }
}
