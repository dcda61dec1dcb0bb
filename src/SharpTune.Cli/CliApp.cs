using System.CommandLine;
using SharpTune.Cli.Commands;

namespace SharpTune.Cli;

/// <summary>The `sharptune` command line: parses arguments and calls the library. User mistakes
/// (<see cref="SharpTuneException"/>) print one line and exit 1; --verbose adds the stack trace.</summary>
public static class CliApp
{
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print stack traces on errors", Recursive = true };

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("SharpTune: fine-tune open reasoning models from .NET")
        {
            InfoCommand.Create(stdout),
            GenerateCommand.Create(stdout),
            ChatCommand.Create(stdout),
            InitCommand.Create(stdout),
            TokenizeCommand.Create(stdout),
            TrainCommand.Create(stdout),
            ExportCommand.Create(stdout),
        };
        root.Options.Add(Verbose);
        var parsed = root.Parse(args);
        try
        {
            // Signals are the commands' business (see GracefulStop), not the parser's.
            return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (Exception e)
        {
            bool verbose = parsed.GetValue(Verbose);
            var userError = Unwrap(e);
            if (userError is not null && !verbose)
            {
                stderr.WriteLine($"error: {userError.Message}");
                return 1;
            }
            stderr.WriteLine(verbose ? $"error: {e}" : $"error: {e.Message} (run with --verbose for details)");
            return userError is not null ? 1 : 2;
        }
    }

    static SharpTuneException? Unwrap(Exception e) => e switch
    {
        SharpTuneException s => s,
        AggregateException { InnerExceptions.Count: 1 } a => Unwrap(a.InnerExceptions[0]),
        TypeInitializationException { InnerException: { } inner } => Unwrap(inner),
        _ => null,
    };
}
