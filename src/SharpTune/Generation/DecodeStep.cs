using System.Diagnostics;
using System.Runtime.InteropServices;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Generation;

/// <summary>
/// One decode step over static tensors (ids, positions, cache column, key mask, all updated in place by the caller):
/// run op by op, or on a CUDA device captured once into a CUDA graph and replayed, which turns ~1,000 kernel launches
/// from the host into one. The first call runs eagerly on the graph's stream (it warms up libraries' lazily made
/// state), the second captures and replays, later calls replay. Where no graph can be made the steps stay eager and
/// <see cref="Path"/> says why.
/// </summary>
internal sealed class DecodeStep : IDisposable
{
    readonly Func<bool, Tensor> _forward;
    readonly bool _wholeCacheEager;
    CudaGraph? _graph;
    Tensor? _graphLogits;   // the captured step's output: rewritten in place by every replay
    int _calls;
    static string? _unavailable;   // why graphs cannot be made in this process, once known

    /// <summary><paramref name="forward"/>(wholeCache) computes the step's logits [B, V] from the static inputs; with
    /// wholeCache its shapes are the same every step and it must not sync with the host (it may be captured).
    /// <paramref name="useGraph"/>: try a CUDA graph (on a CUDA <paramref name="device"/>); <paramref name="wholeCacheEager"/>:
    /// run the graph's form op by op where there is no graph (for tests).</summary>
    public DecodeStep(Func<bool, Tensor> forward, Device device, bool useGraph, bool wholeCacheEager = false)
    {
        _forward = forward;
        _wholeCacheEager = wholeCacheEager;
        if (!useGraph || device.type != DeviceType.CUDA) return;
        if (_unavailable is not null) { Fail(_unavailable, permanent: true); return; }
        _graph = CudaGraph.TryCreate(device.index, out string why);
        if (_graph is null) Fail(why, permanent: true);
    }

    /// <summary>"cuda graph", "eager", or "eager (no CUDA graph: why)".</summary>
    public string Path { get; private set; } = "eager";
    /// <summary>Seconds spent in the warm-up and capture calls.</summary>
    public double CaptureSeconds { get; private set; }

    /// <summary>The step's logits [B, V]. On the graph path the same tensor each time (owned here: do not dispose it).</summary>
    public Tensor Run()
    {
        int call = _calls++;
        if (_graph is null) return _forward(_wholeCacheEager);
        if (_graphLogits is not null)
        {
            _graph.Replay();
            return _graphLogits;
        }
        var clock = Stopwatch.StartNew();
        try
        {
            if (call == 0) return _graph.Eager(() => _forward(true));
            _graphLogits = _graph.Capture(() => _forward(true)).DetachFromDisposeScope();
            _graph.Replay();
            Path = "cuda graph";
            return _graphLogits;
        }
        catch (Exception e) when (e is ExternalException or InvalidOperationException)
        {
            // A capture that failed ran nothing: this step runs eagerly, and so do the rest.
            _graph.Dispose();
            _graph = null;
            Fail(e.Message, permanent: false);
            return _forward(_wholeCacheEager);
        }
        finally { CaptureSeconds += clock.Elapsed.TotalSeconds; }
    }

    void Fail(string why, bool permanent)
    {
        string line = why.Split('\n')[0];
        if (permanent) _unavailable ??= line;
        Path = $"eager (no CUDA graph: {line})";
    }

    public void Dispose()
    {
        _graphLogits?.Dispose();
        _graph?.Dispose();
    }
}
