using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Runtime;

/// <summary>
/// The hand-off of a custom autograd function's backward results. The tensors a backward returns belong to autograd
/// once it returns, but our handles to them must still be disposed (left to the finalizer, each would hold its memory
/// until a GC). The function keeps them here and releases them at its next backward on the same thread, by when that
/// call has surely returned: never from another thread, where a backward of another graph (a test running in parallel,
/// another model) may be returning its own at that moment. An exception must not leave a backward (it would abort the
/// process): it is kept and rethrown on the caller's side.
/// </summary>
/// <param name="failureMessage">the message of the exception that wraps a failure of the backward</param>
public sealed class BackwardResults(string failureMessage)
{
    readonly ThreadLocal<List<Tensor>> _kept = new(() => [], trackAllValues: true);
    Exception? _failure;

    /// <summary>Disposes the handles that earlier backward calls kept on this thread; call at the start of a backward.</summary>
    public void ReleaseEarlier() => Release(_kept.Value!);

    /// <summary>Keeps the handles of what this backward returns (nulls are skipped).</summary>
    public void Keep(IEnumerable<Tensor?> tensors) => _kept.Value!.AddRange(tensors.OfType<Tensor>());

    /// <summary>Records a failure inside backward (the first one wins), for <see cref="RethrowFailure"/>.</summary>
    public void Fail(Exception e) => Interlocked.CompareExchange(ref _failure, e, null);

    public void RethrowFailure()
    {
        if (Interlocked.Exchange(ref _failure, null) is { } e) throw new InvalidOperationException(failureMessage, e);
    }

    /// <summary>After backward() has returned: disposes the handles kept on every thread (CUDA runs backward on a device
    /// thread of its own). Only for an owner with no other backward in flight, such as one model's checkpointing.</summary>
    public void ReleaseAll()
    {
        foreach (var kept in _kept.Values) Release(kept);
    }

    static void Release(List<Tensor> kept)
    {
        foreach (var t in kept) t.Dispose();
        kept.Clear();
    }
}
