using System.Runtime.InteropServices;

namespace SharpTune.Cli;

/// <summary>The first Ctrl-C or SIGTERM asks the running work to stop at its next safe point (training: after the
/// step, with a checkpoint); a second one ends the process at once.</summary>
sealed class GracefulStop : IDisposable
{
    readonly CancellationTokenSource _cts = new();
    readonly PosixSignalRegistration _sigint, _sigterm;

    public CancellationToken Token => _cts.Token;

    public GracefulStop(TextWriter output)
    {
        void Handle(PosixSignalContext context)
        {
            if (_cts.IsCancellationRequested) return;   // second signal: default handling ends the process
            context.Cancel = true;
            output.WriteLine("\nstopping after this step (again to quit now)...");
            _cts.Cancel();
        }
        _sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle);
        _sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle);
    }

    public void Dispose()
    {
        _sigint.Dispose();
        _sigterm.Dispose();
        _cts.Dispose();
    }
}
