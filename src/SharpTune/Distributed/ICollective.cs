using static TorchSharp.torch;

namespace SharpTune.Distributed;

public enum ReduceOp { Sum, Average, Max }

/// <summary>
/// The collectives data parallelism needs, in place on contiguous tensors of this rank's device: <see cref="NcclCollective"/>
/// on GPUs, <see cref="LocalCollective"/> for one process (world size 1, and ranks as threads in tests). Every rank
/// must make the same calls in the same order with tensors of the same shape and dtype.
/// </summary>
public interface ICollective : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }
    /// <summary>Replaces <paramref name="tensor"/> on every rank with the reduction of all ranks' tensors.</summary>
    void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum);
    /// <summary>Copies rank <paramref name="root"/>'s tensor into every other rank's.</summary>
    void Broadcast(Tensor tensor, int root = 0);
    /// <summary>Fills <paramref name="output"/> ([WorldSize × input.numel()], rank order) with every rank's <paramref name="input"/>.</summary>
    void AllGather(Tensor input, Tensor output);
    /// <summary>Returns once every rank has called it (host side; queued device work is not waited for).</summary>
    void Barrier();
}

/// <summary>Deterministic sharding of a global sequence: rank r takes items r, r + N, r + 2N, … Applied to the
/// micro-batches of one optimizer step, N ranks with micro-batch b see exactly the batches that one process with
/// N-step accumulation would, in the same global order.</summary>
public static class Shard
{
    public static List<T> Of<T>(IReadOnlyList<T> global, int rank, int worldSize)
    {
        if (worldSize < 1 || rank < 0 || rank >= worldSize)
            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} of world size {worldSize}");
        var mine = new List<T>();
        for (int i = rank; i < global.Count; i += worldSize) mine.Add(global[i]);
        return mine;
    }
}
