using System.Globalization;
using System.Runtime.InteropServices;
using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Distributed;

/// <summary>
/// A worker's part in a data-parallel run on GPUs: picks its GPU (before CUDA starts), meets the other ranks over the
/// TCP rendezvous, joins the NCCL communicator and checks it with one of each collective. Any rank's death or an NCCL
/// error ends this worker with one error line and exit code 1 (collectives never wait forever for a dead rank).
/// </summary>
public sealed partial class DistributedSession : IDisposable
{
    public const string TimeoutVariable = "SHARPTUNE_DIST_TIMEOUT";
    readonly Rendezvous _rendezvous;
    readonly NcclCollective _collective;
    static NcclCollective? _live;
    static TextWriter _errors = TextWriter.Null;
    static int _rankForErrors;

    public DistributedEnvironment Environment { get; }
    public ICollective Collective => _collective;

    DistributedSession(DistributedEnvironment env, Rendezvous rendezvous, NcclCollective collective)
    {
        Environment = env; _rendezvous = rendezvous; _collective = collective;
    }

    /// <summary>Seconds the rendezvous, communicator setup and barriers may take (SHARPTUNE_DIST_TIMEOUT, default 600).</summary>
    public static TimeSpan Timeout()
    {
        string? value = System.Environment.GetEnvironmentVariable(TimeoutVariable);
        if (string.IsNullOrWhiteSpace(value)) return TimeSpan.FromSeconds(600);
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double s) || !(s > 0))
            throw new SharpTuneException($"{TimeoutVariable}={SharpTuneException.Quote(value)}: expected a number of seconds > 0");
        return TimeSpan.FromSeconds(s);
    }

    /// <summary>Must run before anything loads libtorch: the GPU is chosen through CUDA_VISIBLE_DEVICES.</summary>
    /// <param name="errors">where a fatal error of another rank or of NCCL is written before this process exits</param>
    public static DistributedSession Start(DistributedEnvironment env, TextWriter errors, Action<string>? log = null)
    {
        var timeout = Timeout();
        _errors = errors;
        _rankForErrors = env.Rank;
        string gpu = env.VisibleDevice(System.Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES"));
        SetNativeEnvironment("CUDA_VISIBLE_DEVICES", gpu, 1);
        var device = TorchRuntime.Initialize("cuda");
        var rendezvous = Rendezvous.Join(env.Rank, env.WorldSize, env.MasterAddr, env.MasterPort, () => NcclLibrary.GetUniqueId().ToArray(), timeout, Fail);
        try
        {
            // CUDA_VISIBLE_DEVICES leaves this worker one GPU, its device 0.
            var collective = NcclCollective.Create(NcclUniqueId.From(rendezvous.Payload), env.Rank, env.WorldSize, gpu: 0, timeout,
                () => rendezvous.Barrier(timeout), Fail);
            _live = collective;
            SelfCheck(collective, device);
            log?.Invoke($"distributed: rank {env.Rank} of {env.WorldSize} (local {env.LocalRank} of {env.LocalWorldSize}) on GPU "
                + $"{gpu}; {NcclLibrary.Description}; all-reduce, broadcast and all-gather checked");
            return new DistributedSession(env, rendezvous, collective);
        }
        catch
        {
            rendezvous.Crash();   // no goodbye: the others must not wait for this rank
            throw;
        }
    }

    /// <summary>One of each collective on small tensors, with known answers: a wrong binding fails here, not as a wrong model.</summary>
    static void SelfCheck(ICollective c, Device device)
    {
        using var scope = NewDisposeScope();
        int n = c.WorldSize, r = c.Rank;
        var sum = full(3, r + 1f, float32, device);
        c.AllReduce(sum);
        var half = full(4, 1f, bfloat16, device);
        c.AllReduce(half);
        var shared = full(2, r == 0 ? 7f : -1f, float32, device);
        c.Broadcast(shared);
        var gathered = zeros(n, float32, device);
        c.AllGather(full(1, (float)r, float32, device), gathered);
        float[] got = [.. sum.cpu().data<float>(), .. half.to(float32).cpu().data<float>(), .. shared.cpu().data<float>(), .. gathered.cpu().data<float>()];
        float[] want = [.. Enumerable.Repeat(n * (n + 1) / 2f, 3), .. Enumerable.Repeat((float)n, 4), 7f, 7f, .. Enumerable.Range(0, n).Select(i => (float)i)];
        if (!got.SequenceEqual(want))
            throw new SharpTuneException($"rank {r}: NCCL's self-check gave [{string.Join(", ", got)}], expected [{string.Join(", ", want)}]; "
                + $"the NCCL library ({NcclLibrary.Description}) does not work with this GPU setup");
    }

    /// <summary>Another rank died or NCCL failed: nothing this process still computes can be used. The communicator is
    /// aborted (pending collectives return) and the process ends at once with one error line.</summary>
    static void Fail(string message)
    {
        try
        {
            _errors.WriteLine($"error: rank {_rankForErrors} stops: {message}");
            _errors.Flush();
            _live?.Abort();
        }
        finally { ExitNow(1); }
    }

    bool _finished;

    /// <summary>Leaves the run after this rank's part succeeded: the communicator is destroyed and rank 0 gets a goodbye.</summary>
    public void Finish()
    {
        if (_finished) return;
        _finished = true;
        _live = null;
        _collective.Dispose();
        _rendezvous.Dispose();
    }

    /// <summary>Without <see cref="Finish"/> (an exception is on its way out), the connections close without a goodbye,
    /// so that the other ranks learn that this one failed instead of waiting for it in their next collective.</summary>
    public void Dispose()
    {
        if (_finished) return;
        _finished = true;
        _live = null;
        _collective.Abort();
        _rendezvous.Crash();
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetNativeEnvironment(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "_exit")]
    private static partial void ExitNow(int code);
}
