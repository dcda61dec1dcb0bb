using System.Diagnostics;
using System.Text.Json;

namespace SharpTune.Runtime;

/// <summary>DIAGNOSIS ONLY (SHARPTUNE_STEP_TRACE=1): GPU time, host time and the allocator's peak of each interval of a
/// training step, named by the mark that ends it, summed per name and printed to stderr once per step.</summary>
public static class StepTrace
{
    public static readonly bool On = Environment.GetEnvironmentVariable("SHARPTUNE_STEP_TRACE") == "1";
    static readonly List<(string Name, CudaEvent? Event, double Host, long Peak, long Allocated, long Reserved)> Marks = [];
    static readonly Stopwatch Clock = Stopwatch.StartNew();
    static long _step;

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
            Console.Error.WriteLine(JsonSerializer.Serialize(new
            {
                trace = "step",
                step = ++_step,
                reserved_peak_GiB = Math.Round(Marks.Max(m => m.Reserved) / 1073741824.0, 3),
                allocated_end_GiB = Math.Round(Marks[^1].Allocated / 1073741824.0, 3),
                intervals = sums.Select(kv => new { name = kv.Key, n = kv.Value.Count, gpu_ms = Math.Round(kv.Value.Gpu, 2),
                    host_ms = Math.Round(kv.Value.Host, 2), peak_alloc_GiB = Math.Round(kv.Value.Peak / 1073741824.0, 3) }),
            }));
            var last = Marks[^1];
            foreach (var m in Marks.Take(Marks.Count - 1)) m.Event?.Dispose();
            Marks.Clear();
            Marks.Add(last);
        }
    }
}
