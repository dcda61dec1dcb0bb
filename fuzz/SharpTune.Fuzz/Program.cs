using SharpFuzz;
using SharpTune.Fuzz;

// dotnet SharpTune.Fuzz.dll TARGET            — under afl-fuzz (persistent mode in a child process, input on stdin)
// dotnet SharpTune.Fuzz.dll TARGET FILE...    — replay files, print each outcome (for triage)
if (args.Length == 0 || !FuzzTargets.All.ContainsKey(args[0]))
{
    Console.Error.WriteLine($"usage: SharpTune.Fuzz {string.Join("|", FuzzTargets.All.Keys)} [FILE...]");
    return 2;
}
string target = args[0];
if (args.Length > 1)
{
    foreach (var file in args.Skip(1))
    {
        try
        {
            FuzzTargets.All[target](File.ReadAllBytes(file));
            Console.WriteLine($"{file}: ok");
        }
        catch (SharpTune.SharpTuneException e)
        {
            Console.WriteLine($"{file}: error: {e.Message}");
        }
    }
    return 0;
}
// Out of process: SharpFuzz's server restarts the harness when an input kills or hangs it, instead of the whole
// fork server dying with it (in-process mode reports its own pid, so afl-fuzz's timeout kill took the server down:
// "Unable to communicate with fork server", how the Parquet runs of 2026-11-29 ended).
Fuzzer.OutOfProcess.Run(stream =>
{
    using var copy = new MemoryStream();
    stream.CopyTo(copy);
    FuzzTargets.Run(target, copy.ToArray());
});
return 0;
