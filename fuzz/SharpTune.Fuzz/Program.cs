using SharpFuzz;
using SharpTune.Fuzz;

// dotnet SharpTune.Fuzz.dll TARGET            — under afl-fuzz (persistent mode, input on stdin)
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
Fuzzer.Run(stream =>
{
    using var copy = new MemoryStream();
    stream.CopyTo(copy);
    FuzzTargets.Run(target, copy.ToArray());
});
return 0;
