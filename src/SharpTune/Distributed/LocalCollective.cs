using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Distributed;

/// <summary>
/// Collectives among ranks that are threads of one process (world size 1 in an ordinary run; N threads in tests that
/// check data parallelism without GPUs). Reductions add the ranks' tensors in rank order on every rank, so all ranks
/// get bit-identical results, as NCCL's do. Not a production transport: one process, host-side synchronization.
/// </summary>
public sealed class LocalCollective : ICollective
{
    sealed class Group(int size, TimeSpan timeout)
    {
        public readonly Barrier Barrier = new(size);
        public readonly Tensor?[] Slots = new Tensor?[size];
        public readonly TimeSpan Timeout = timeout;
    }

    readonly Group _group;
    public int Rank { get; }
    public int WorldSize => _group.Slots.Length;

    LocalCollective(Group group, int rank) { _group = group; Rank = rank; }

    /// <summary>One collective per rank, to be used from one thread each. A rank that does not reach a collective
    /// within <paramref name="timeout"/> makes the others fail instead of waiting forever.</summary>
    public static IReadOnlyList<LocalCollective> Create(int worldSize, TimeSpan? timeout = null)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize));
        var group = new Group(worldSize, timeout ?? TimeSpan.FromMinutes(5));
        return Enumerable.Range(0, worldSize).Select(r => new LocalCollective(group, r)).ToList();
    }

    public static LocalCollective Single() => Create(1)[0];

    void Wait()
    {
        if (!_group.Barrier.SignalAndWait(_group.Timeout))
            throw new SharpTuneException($"rank {Rank}: the other ranks did not reach the collective within {_group.Timeout.TotalSeconds:0} s");
    }

    /// <summary>Posts this rank's tensor, lets <paramref name="read"/> look at all of them, then waits until every rank has read.</summary>
    void Exchange(Tensor tensor, Action<Tensor?[]> read)
    {
        if (WorldSize == 1) { read([tensor]); return; }
        _group.Slots[Rank] = tensor;
        Wait();
        read(_group.Slots);
        Wait();
    }

    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor? result = null;
        Exchange(tensor, all =>
        {
            result = all[0]!.clone();
            for (int r = 1; r < all.Length; r++)
                result = op == ReduceOp.Max ? maximum(result, all[r]!) : result.add_(all[r]!);
            if (op == ReduceOp.Average) result.div_(WorldSize);
        });
        tensor.copy_(result!);   // after the exchange's closing wait: every rank has read every tensor
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        using var noGrad = no_grad();
        Tensor? copy = null;
        Exchange(tensor, all => { if (Rank != root) copy = all[root]!.clone(); });
        if (copy is not null) { tensor.copy_(copy); copy.Dispose(); }
    }

    public void AllGather(Tensor input, Tensor output)
    {
        if (output.numel() != input.numel() * WorldSize)
            throw new ArgumentException($"all-gather output has {output.numel()} elements, needs {input.numel() * WorldSize}");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        Exchange(input, all =>
        {
            var flat = output.view(-1);
            for (int r = 0; r < all.Length; r++)
                flat.narrow(0, r * input.numel(), input.numel()).copy_(all[r]!.reshape(-1));
        });
    }

    public void Barrier() { if (WorldSize > 1) Wait(); }

    public void Dispose() { }
}
