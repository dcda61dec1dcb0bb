namespace SharpTune.Distributed;

/// <summary>
/// Notices a collective that never completes. Collectives are queued, not waited for, so a rank that is alive but
/// stuck (a hung file system, a deadlocked data loader) would hold the others inside NCCL forever: the queuing thread
/// marks each collective with <see cref="Queued"/> and the watchdog asks <see cref="Stalled"/> every half second.
/// Stream order makes the newest mark enough: when it has completed, so has everything queued before it.
/// </summary>
public sealed class CollectiveWatch(Func<bool> newestCompleted, Action markNewest, TimeSpan timeout, Func<DateTime>? clock = null)
{
    readonly Lock _gate = new();
    readonly Func<DateTime> _clock = clock ?? (() => DateTime.UtcNow);
    DateTime? _waitingSince;

    /// <summary>After queuing a collective: moves the mark to it. The wait counts from the oldest collective not yet
    /// seen complete, so a run that keeps queuing behind one stuck collective still times out.</summary>
    public void Queued()
    {
        lock (_gate)
        {
            if (_waitingSince is null || newestCompleted()) _waitingSince = _clock();
            markNewest();
        }
    }

    /// <summary>How long the oldest unfinished collective has waited, when that is over the timeout; otherwise null.</summary>
    public TimeSpan? Stalled()
    {
        lock (_gate)
        {
            if (_waitingSince is not { } since) return null;
            if (newestCompleted()) { _waitingSince = null; return null; }
            var waited = _clock() - since;
            return waited > timeout ? waited : null;
        }
    }
}
