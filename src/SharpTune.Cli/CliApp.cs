using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Parsing;
using SharpTune.Cli.Commands;

namespace SharpTune.Cli;

/// <summary>The `sharptune` command line: parses arguments and calls the library. User mistakes
/// (<see cref="SharpTuneException"/>, and flags that do not parse) print one line and exit 1; --verbose adds
/// the stack trace. Exit 2 is kept for faults of SharpTune itself.</summary>
public static class CliApp
{
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print stack traces on errors", Recursive = true };

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        // A plain Command, not RootCommand, so that usage says `sharptune` whatever the host process is called
        // (`dotnet run` would make it "SharpTune.Cli").
        var root = new Command("sharptune", "SharpTune: fine-tune open reasoning models from .NET")
        {
            InfoCommand.Create(stdout),
            GenerateCommand.Create(stdout),
            ChatCommand.Create(stdout),
            InitCommand.Create(stdout),
            TokenizeCommand.Create(stdout),
            TrainCommand.Create(stdout, stderr, args),
            ExportCommand.Create(stdout),
            ScoreCommand.Create(stdout),
            DecodeLogitsCommand.Create(stdout),
            EvalCommand.Create(stdout),
            ServeCommand.Create(stdout),
        };
        root.Options.Add(new HelpOption());
        root.Options.Add(new VersionOption());
        root.Options.Add(Verbose);
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0 && !parsed.Tokens.Any(t => t.Value is "--help" or "-h" or "-?"))
        {
            stderr.WriteLine($"error: {ParseErrorMessage(parsed)}");
            return 1;
        }
        try
        {
            // Signals are the commands' business (see GracefulStop), not the parser's.
            return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = null });
        }
        catch (Exception e)
        {
            bool verbose = parsed.GetValue(Verbose);
            // A file-system refusal (a loop, a full disk, no permission) is the user's to fix; .NET's message names the path.
            var userError = Unwrap(e) ?? (UnwrapIo(e) is { } io ? new SharpTuneException(io.Message, io) : null);
            if (userError is not null && !verbose)
            {
                stderr.WriteLine($"error: {ErrorText.Message(userError.Message)}");
                return 1;
            }
            if (userError is not null) { stderr.WriteLine($"error: {e}"); return 1; }
            stderr.WriteLine(verbose
                ? $"error: internal fault in SharpTune: {e}"
                : $"error: internal fault in SharpTune ({e.GetType().Name}: {SharpTuneException.Quote(e.Message)}); please report it with the command and the output of --verbose");
            return 2;
        }
    }

    /// <summary>One line for the first thing that did not parse: an unknown flag with the nearest known one, or a
    /// value of the wrong type with the type named in words.</summary>
    static string ParseErrorMessage(ParseResult parsed)
    {
        var command = parsed.CommandResult.Command;
        var known = KnownOptions(command).ToList();
        foreach (var token in parsed.UnmatchedTokens)
        {
            if (!token.StartsWith('-') && command.Subcommands.Count > 0)
                return $"unknown command {SharpTuneException.Quote(token)}" + (SharpTuneException.NearestName(token, command.Subcommands.Select(c => c.Name)) is { } c
                    ? $"; did you mean {c}?" : $"; expected one of {string.Join(", ", command.Subcommands.Select(c => c.Name))}");
            if (!token.StartsWith('-')) return $"unexpected argument {SharpTuneException.Quote(token)} for `{CommandPath(parsed)}` (see --help)";
            string name = token.Split('=')[0];
            string hint = SharpTuneException.NearestName(name, known) is { } nearest ? $"; did you mean {nearest}?" : " (see --help)";
            return $"unknown option {SharpTuneException.Quote(name)} for `{CommandPath(parsed)}`{hint}";
        }
        // A value of the wrong type before a missing required option: it is what the user just typed.
        foreach (var error in parsed.Errors.OrderBy(e => e.SymbolResult is OptionResult { Tokens.Count: > 0 } ? 0 : 1))
        {
            if (error.SymbolResult is not OptionResult { Option: { } option } result) continue;
            if (result.IdentifierToken is null) return $"`{CommandPath(parsed)}` needs {option.Name} (see --help)";
            if (result.Tokens.Count == 0) return $"{option.Name} needs a value";
            // A one-value option given twice: System.CommandLine collects both values and then fails on their type.
            if (result.Tokens.Count > 1 && option.Arity.MaximumNumberOfValues == 1)
                return $"{option.Name} is given {result.Tokens.Count} times ({string.Join(", ", result.Tokens.Take(3).Select(t => SharpTuneException.Quote(t.Value)))}); give it once";
            return $"{option.Name} expects {TypeInWords(option.ValueType)}, got {SharpTuneException.Quote(string.Join(" ", result.Tokens.Select(t => t.Value)))}";
        }
        if (command.Subcommands.Count > 0) return $"no command given; expected one of {string.Join(", ", command.Subcommands.Select(c => c.Name))} (see --help)";
        return parsed.Errors[0].Message;
    }

    static string CommandPath(ParseResult parsed)
    {
        var names = new List<string>();
        for (SymbolResult? r = parsed.CommandResult; r is CommandResult c; r = c.Parent) names.Insert(0, c.Command.Name);
        return string.Join(" ", names);
    }

    static IEnumerable<string> KnownOptions(Command command) =>
        command.Options.Concat(command.Parents.OfType<Command>().SelectMany(p => p.Options.Where(o => o.Recursive)))
            .SelectMany(o => o.Aliases.Prepend(o.Name)).Where(n => n.StartsWith("--"));

    static string TypeInWords(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        return t == typeof(int) || t == typeof(long) ? "a whole number" : t == typeof(double) || t == typeof(float) ? "a number"
            : t == typeof(bool) ? "true or false" : $"a {t.Name}";
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
