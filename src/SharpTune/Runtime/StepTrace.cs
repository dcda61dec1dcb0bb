using System.Diagnostics;
using System.Text.Json;

namespace SharpTune.Runtime;

/// <summary>Where a training step's time and memory go, for measuring (SHARPTUNE_STEP_TRACE=1; off, every call returns at
/// once): the step's code marks the end of each phase; each interval between two marks gets its GPU time (timed CUDA
/// events), its host time and the caching allocator's peak (<see cref="DeviceMemory"/>), summed per phase name and
/// printed to stderr as one JSON line per step, with the step's driver calls of the caching allocators
/// (<see cref="AllocatorCounters"/>) and .NET's collections and their pause. Reading the events waits for the step's end on the host, once per step,
/// so traced steps run a little slower. docs/quantization.md shows what it found.</summary>
public static class StepTrace
{
    public const string SwitchVariable = "SHARPTUNE_STEP_TRACE";
    public static readonly bool On = Environment.GetEnvironmentVariable(SwitchVariable) == "1";
    static readonly List<(string Name, CudaEvent? Event, double Host, long Peak, long Allocated, long Reserved)> Marks = [];
    static readonly Stopwatch Clock = Stopwatch.StartNew();
    static long _step;
    static AllocatorCounters.Totals? _counters;
    static (int Gen0, int Gen1, int Gen2, TimeSpan Pause) _gc;

    /// <summary>Ends the current interval, naming it <paramref name="name"/>.</summary>
    public static void Mark(string name)
    {
        if (!On) return;
        lock (Marks)
        {
            var e = CudaEvent.TryCreate(0, timed: true);
            e?.Record();
            var s = DeviceMemory.Current();
            DeviceMemory.ResetPeak();
            Marks.Add((name, e, Clock.Elapsed.TotalMilliseconds, s?.PeakAllocated ?? 0, s?.Allocated ?? 0, s?.PeakReserved ?? 0));
        }
    }

    /// <summary>Prints the step's intervals (waits for the GPU to reach the last mark) and starts the next step's.</summary>
    public static void Flush()
    {
        if (!On) return;
        lock (Marks)
        {
            var sums = new Dictionary<string, (int Count, double Gpu, double Host, long Peak)>();
            for (int i = 1; i < Marks.Count; i++)
            {
                var (a, b) = (Marks[i - 1], Marks[i]);
                double gpu = a.Event is { } ea && b.Event is { } eb ? CudaEvent.SecondsBetween(ea, eb) * 1000 : 0;
                var old = sums.GetValueOrDefault(b.Name);
                sums[b.Name] = (old.Count + 1, old.Gpu + gpu, old.Host + (b.Host - a.Host), Math.Max(old.Peak, b.Peak));
            }
            // What the step cost outside its ops: driver calls of the caching allocators, and .NET's collections.
            var counters = AllocatorCounters.Read();
            var gc = (GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2), GC.GetTotalPauseDuration());
            var was = _counters;
            Console.Error.WriteLine(JsonSerializer.Serialize(new
            {
                trace = "step",
                step = ++_step,
                reserved_peak_GiB = Math.Round(Marks.Max(m => m.Reserved) / 1073741824.0, 3),
                allocated_end_GiB = Math.Round(Marks[^1].Allocated / 1073741824.0, 3),
                allocators = counters is null ? null : new
                {
                    device_allocs = counters.DeviceAllocs - (was?.DeviceAllocs ?? 0),
                    device_frees = counters.DeviceFrees - (was?.DeviceFrees ?? 0),
                    retries = counters.Retries - (was?.Retries ?? 0),
                    stream_syncs = counters.StreamSyncs - (was?.StreamSyncs ?? 0),
                    segments = counters.Segments,
                    reserved_GiB = Math.Round(counters.ReservedBytes / 1073741824.0, 3),
                    host_allocs = counters.HostAllocs - (was?.HostAllocs ?? 0),
                    host_alloc_ms = Math.Round((counters.HostAllocMicroseconds - (was?.HostAllocMicroseconds ?? 0)) / 1000.0, 2),
                    host_frees = counters.HostFrees - (was?.HostFrees ?? 0),
                    pinned_GiB = Math.Round(counters.PinnedBytes / 1073741824.0, 3),
                },
                gc = new { gen0 = gc.Item1 - _gc.Gen0, gen1 = gc.Item2 - _gc.Gen1, gen2 = gc.Item3 - _gc.Gen2,
                    pause_ms = Math.Round((gc.Item4 - _gc.Pause).TotalMilliseconds, 2) },
                intervals = sums.Select(kv => new { name = kv.Key, n = kv.Value.Count, gpu_ms = Math.Round(kv.Value.Gpu, 2),
                    host_ms = Math.Round(kv.Value.Host, 2), peak_alloc_GiB = Math.Round(kv.Value.Peak / 1073741824.0, 3) }),
            }));
            (_counters, _gc) = (counters, gc);
            var last = Marks[^1];
            foreach (var m in Marks.Take(Marks.Count - 1)) m.Event?.Dispose();
            Marks.Clear();
            Marks.Add(last);
        }
    }
}
