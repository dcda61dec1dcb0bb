using System.Runtime.InteropServices;

namespace SharpTune.Cli;

/// <summary>Ctrl-C in `chat`: during a reply it stops the reply and keeps the conversation; at the prompt the first
/// one only warns, and a second one in a row quits.</summary>
sealed class ChatInterrupts(TextWriter output) : IDisposable
{
    readonly Lock _gate = new();
    CancellationTokenSource? _reply;
    bool _warned;
    PosixSignalRegistration? _registration;

    /// <summary>Starts listening for SIGINT (not in tests, which call <see cref="Interrupt"/> directly).</summary>
    public void Listen() => _registration = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => context.Cancel = Interrupt());

    /// <summary>A reply starts: the token is cancelled by Ctrl-C.</summary>
    public CancellationToken BeginReply()
    {
        lock (_gate)
        {
            _warned = false;
            _reply = new CancellationTokenSource();
            return _reply.Token;
        }
    }

    /// <summary>The reply ended; true when Ctrl-C stopped it.</summary>
    public bool EndReply()
    {
        lock (_gate)
        {
            bool stopped = _reply?.IsCancellationRequested ?? false;
            _reply?.Dispose();
            _reply = null;
            return stopped;
        }
    }

    /// <summary>The user typed a line: a later Ctrl-C warns again before quitting.</summary>
    public void Typed() { lock (_gate) _warned = false; }

    /// <summary>Handles one Ctrl-C; false means "quit now" (the default action ends the process).</summary>
    public bool Interrupt()
    {
        lock (_gate)
        {
            if (_reply is not null) { _reply.Cancel(); return true; }
            if (_warned) { output.WriteLine(); return false; }
            _warned = true;
            output.Write("\n(Ctrl-C again, /exit or Ctrl-D quits)\n> ");
            output.Flush();
            return true;
        }
    }

    public void Dispose()
    {
        _registration?.Dispose();
        _reply?.Dispose();
    }
}
