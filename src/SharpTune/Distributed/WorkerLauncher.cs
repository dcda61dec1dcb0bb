using System.Diagnostics;
using System.Runtime.InteropServices;

namespace SharpTune.Distributed;

/// <summary>The program a worker runs: this executable again (or `dotnet the.dll` when run that way), or any command in tests.</summary>
public sealed record WorkerCommand(string FileName, IReadOnlyList<string> Arguments)
{
    /// <summary>This process's own program with <paramref name="arguments"/>.</summary>
    public static WorkerCommand Self(IReadOnlyList<string> arguments)
    {
        string path = Environment.ProcessPath ?? throw new SharpTuneException("cannot tell which program this is, to start its workers");
        bool dotnetHost = Path.GetFileNameWithoutExtension(path).Equals("dotnet", StringComparison.OrdinalIgnoreCase);
        return dotnetHost ? new WorkerCommand(path, [Environment.GetCommandLineArgs()[0], .. arguments]) : new WorkerCommand(path, arguments);
    }
}

/// <summary>
/// Starts one worker process per local GPU with torchrun's variables and supervises them: rank 0's output goes to this
/// console as it is, the other workers' error output with a "[rank k]" prefix (their ordinary output is dropped). When
/// a worker fails, the others are stopped and the failing rank is named with its last error line; exit 1.
/// </summary>
public static partial class WorkerLauncher
{
    public static int Run(LaunchPlan plan, WorkerCommand command, TextWriter stdout, TextWriter stderr)
    {
        var environments = plan.WorkerEnvironments();
        var workers = new List<(int Rank, Process Process, string[] LastError)>();
        var output = new Lock();
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => c.Cancel = true);   // the terminal sends it to the workers too
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c =>
        {
            c.Cancel = true;
            foreach (var w in workers) try { if (!w.Process.HasExited) SendSignal(w.Process.Id, 15); } catch (InvalidOperationException) { }
        });
        if (plan.NodeRank > 0)
            stdout.WriteLine($"node {plan.NodeRank}: starting ranks {plan.NodeRank * plan.GpusPerNode}-{plan.NodeRank * plan.GpusPerNode + plan.GpusPerNode - 1} "
                + $"of {plan.WorldSize}; progress shows on node 0");
        try
        {
            foreach (var env in environments)
            {
                int rank = int.Parse(env["RANK"]);
                var psi = new ProcessStartInfo(command.FileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
                foreach (var a in command.Arguments) psi.ArgumentList.Add(a);
                foreach (var (k, v) in env) psi.Environment[k] = v;
                var process = new Process { StartInfo = psi };
                var lastError = new string[1];
                process.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is null || rank != 0) return;
                    lock (output) stdout.WriteLine(e.Data);
                };
                process.ErrorDataReceived += (_, e) =>
                {
                    if (e.Data is null) return;
                    if (e.Data.Trim().Length > 0) lastError[0] = e.Data;
                    lock (output) stderr.WriteLine(rank == 0 ? e.Data : $"[rank {rank}] {e.Data}");
                };
                try { process.Start(); }
                catch (System.ComponentModel.Win32Exception e) { throw new SharpTuneException($"cannot start worker {command.FileName}: {e.Message}"); }
                process.BeginOutputReadLine();
                process.BeginErrorReadLine();
                workers.Add((rank, process, lastError));
            }

            // The first worker to fail decides the outcome; the others are stopped.
            var running = workers.ToList();
            int rank0Code = 0;
            while (running.Count > 0)
            {
                int index = WaitAny(running.Select(w => w.Process).ToList());
                var done = running[index];
                running.RemoveAt(index);
                done.Process.WaitForExit();   // drains its output
                int code = done.Process.ExitCode;
                if (done.Rank == 0) rank0Code = code;
                if (code is 0 or 130) continue;   // 130: stopped by Ctrl+C, after saving a checkpoint
                foreach (var w in running) Kill(w.Process);
                string why = done.LastError[0] is { } line ? ": " + (line.StartsWith("error: ", StringComparison.Ordinal) ? line["error: ".Length..] : line) : "";
                lock (output) stderr.WriteLine($"error: rank {done.Rank} of {plan.WorldSize} failed (exit code {code}){why}; the other workers were stopped");
                return 1;
            }
            return rank0Code;
        }
        finally
        {
            foreach (var w in workers) { Kill(w.Process); w.Process.Dispose(); }
        }
    }

    static int WaitAny(List<Process> processes)
    {
        var tasks = processes.Select(p => p.WaitForExitAsync()).ToArray();
        return Task.WaitAny(tasks);
    }

    static void Kill(Process p)
    {
        try { if (!p.HasExited) { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } }
        catch (InvalidOperationException) { }   // not started, or already gone
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int SendSignal(int pid, int signal);
}
