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
            var (message, code) = Describe(e);
            stderr.WriteLine(verbose ? $"error: {e}" : $"error: {ErrorText.Message(message)}");
            return code;
        }
    }

    /// <summary>What to print for an exception, and the exit code: 1 for a user mistake or a file-system refusal
    /// (the message names the file), 2 for a fault of SharpTune itself, worded to ask for a report.</summary>
    static (string Message, int Code) Describe(Exception e)
    {
        if (Unwrap(e) is { } user) return (user.Message, 1);
        if (UnwrapIo(e) is { } io) return (io.Message, 1);
        return ($"internal error ({e.GetType().Name}: {e.Message}). This is a bug in SharpTune, not in your input: "
            + "please report it with the command line and the output of the same command with --verbose", 2);
    }

    static Exception? UnwrapIo(Exception e) => e switch
    {
        IOException or UnauthorizedAccessException => e,
        AggregateException { InnerExceptions.Count: 1 } a => UnwrapIo(a.InnerExceptions[0]),
        TypeInitializationException { InnerException: { } inner } => UnwrapIo(inner),
        _ => null,
    };

    static SharpTuneException? Unwrap(Exception e) => e switch
    {
        SharpTuneException s => s,
        AggregateException { InnerExceptions.Count: 1 } a => Unwrap(a.InnerExceptions[0]),
        TypeInitializationException { InnerException: { } inner } => Unwrap(inner),
        _ => null,
    };
}
