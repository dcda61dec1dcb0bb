using SharpTune.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Distributed;

/// <summary>
/// Collectives over an NCCL communicator, one rank per process and GPU. Calls are queued on the default CUDA stream
/// (stream 0): TorchSharp runs all its work there, so a collective starts after the kernels that produced its input
/// and before the ones that read its output, and no host synchronization is needed. A watchdog thread polls the
/// communicator's asynchronous error, and a collective that has not completed within the timeout (a rank alive but
/// stuck), and calls <c>onFailure</c> (which aborts) instead of letting ranks wait forever.
/// </summary>
public sealed unsafe class NcclCollective : ICollective
{
    IntPtr _comm;
    readonly Action _barrier;
    readonly CancellationTokenSource _stop = new();
    readonly Thread _watchdog;
    readonly CudaEvent _newest;
    readonly CollectiveWatch _watch;
    readonly TimeSpan _timeout;
    static delegate* unmanaged<IntPtr, IntPtr> _tensorData;

    public int Rank { get; }
    public int WorldSize { get; }

    /// <param name="barrier">a host-side barrier among the ranks (the rendezvous' control channel)</param>
    /// <param name="onFailure">called from the watchdog thread with NCCL's error text</param>
    NcclCollective(IntPtr comm, int rank, int worldSize, int gpu, TimeSpan timeout, Action barrier, Action<string> onFailure)
    {
        _comm = comm; Rank = rank; WorldSize = worldSize; _barrier = barrier; _timeout = timeout;
        _newest = CudaEvent.TryCreate(gpu) ?? throw new InvalidOperationException("NCCL needs the CUDA runtime, which is not loaded");
        _watch = new CollectiveWatch(_newest.Completed, _newest.Record, timeout);
        _watchdog = new Thread(() => Watch(onFailure)) { IsBackground = true, Name = "nccl-watchdog" };
        _watchdog.Start();
    }

    /// <summary>Joins the communicator named by <paramref name="id"/> (made by rank 0 with <see cref="NcclLibrary.GetUniqueId"/>)
    /// on the current CUDA device (<paramref name="gpu"/>, this process's index of it). The call blocks until every rank has
    /// joined; past <paramref name="timeout"/> it fails, and so does a collective that takes longer later.</summary>
    public static NcclCollective Create(NcclUniqueId id, int rank, int worldSize, int gpu, TimeSpan timeout, Action barrier, Action<string> onFailure)
    {
        var init = Task.Run(() => NcclLibrary.CommInitRank(worldSize, id, rank));
        if (!init.Wait(timeout))
            throw new SharpTuneException($"rank {rank}: NCCL communicator setup did not complete within {timeout.TotalSeconds:0} s (a rank did not join, "
                + "or the ranks cannot reach each other: check NCCL_SOCKET_IFNAME and the firewall; NCCL_DEBUG=INFO tells more)");
        return new NcclCollective(init.GetAwaiter().GetResult(), rank, worldSize, gpu, timeout, barrier, onFailure);
    }

    void Watch(Action<string> onFailure)
    {
        while (!_stop.Token.WaitHandle.WaitOne(500))
        {
            int error;
            try { error = NcclLibrary.AsyncError(_comm); }
            catch (SharpTuneException e) { onFailure(e.Message); return; }
            if (error is not (0 or NcclLibrary.InProgress))
            {
                onFailure($"NCCL reported an asynchronous error on rank {Rank}: {NcclLibrary.ErrorString(error)}");
                return;
            }
            if (_watch.Stalled() is { } waited)
            {
                onFailure($"rank {Rank}: a collective has not completed after {waited.TotalSeconds:0} s (limit {_timeout.TotalSeconds:0} s, "
                    + "SHARPTUNE_DIST_TIMEOUT): another rank is stuck or gone");
                return;
            }
        }
    }

    static IntPtr DataPointer(Tensor t)
    {
        if (t.device_type != DeviceType.CUDA) throw new ArgumentException($"NCCL collectives need CUDA tensors, got one on {t.device}");
        if (!t.is_contiguous()) throw new ArgumentException("NCCL collectives need contiguous tensors");
        // THSTensor_data includes the storage offset (a view's first element), unlike Storage.data_ptr().
        if (_tensorData == null) _tensorData = (delegate* unmanaged<IntPtr, IntPtr>)TorchRuntime.TorchSharpExport("THSTensor_data");
        return _tensorData(t.Handle);
    }

    static int DataType(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => NcclLibrary.Float32,
        ScalarType.BFloat16 => NcclLibrary.Bfloat16,
        ScalarType.Float16 => NcclLibrary.Float16,
        ScalarType.Float64 => NcclLibrary.Float64,
        ScalarType.Int64 => NcclLibrary.Int64,
        ScalarType.Int32 => NcclLibrary.Int32,
        ScalarType.Int8 => NcclLibrary.Int8,
        ScalarType.Byte => NcclLibrary.Uint8,
        _ => throw new ArgumentException($"NCCL has no reduction for {t.dtype}"),
    };

    // Stream 0 (IntPtr.Zero): the legacy default stream, where TorchSharp queues every kernel.
    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        var p = DataPointer(tensor);
        int ncclOp = op switch { ReduceOp.Sum => NcclLibrary.OpSum, ReduceOp.Average => NcclLibrary.OpAvg, _ => NcclLibrary.OpMax };
        NcclLibrary.Check(NcclLibrary.AllReduce(p, p, tensor.numel(), DataType(tensor), ncclOp, _comm, IntPtr.Zero), "ncclAllReduce");
        _watch.Queued();
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        var p = DataPointer(tensor);
        NcclLibrary.Check(NcclLibrary.Broadcast(p, p, tensor.numel(), DataType(tensor), root, _comm, IntPtr.Zero), "ncclBroadcast");
        _watch.Queued();
    }

    public void AllGather(Tensor input, Tensor output)
    {
        if (output.numel() != input.numel() * WorldSize || output.dtype != input.dtype)
            throw new ArgumentException($"all-gather output must hold {input.numel() * WorldSize} {input.dtype} elements");
        NcclLibrary.Check(NcclLibrary.AllGather(DataPointer(input), DataPointer(output), input.numel(), DataType(input), _comm, IntPtr.Zero), "ncclAllGather");
        _watch.Queued();
    }

    public void Barrier() => _barrier();

    /// <summary>Stops the communicator at once (pending collectives return): for a failing run, from any thread.</summary>
    public void Abort()
    {
        var comm = Interlocked.Exchange(ref _comm, IntPtr.Zero);
        if (comm != IntPtr.Zero) NcclLibrary.CommAbort(comm);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _watchdog.Join();
        _newest.Dispose();
        var comm = Interlocked.Exchange(ref _comm, IntPtr.Zero);
        if (comm != IntPtr.Zero) NcclLibrary.CommDestroy(comm);
    }
}
