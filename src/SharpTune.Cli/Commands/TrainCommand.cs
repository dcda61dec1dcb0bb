using System.CommandLine;
using SharpTune.Data;
using SharpTune.Distributed;
using SharpTune.Evaluation;
using SharpTune.Export;
using SharpTune.Reporting;
using SharpTune.Training;
using TorchSharp;

namespace SharpTune.Cli.Commands;

/// <summary>`sharptune train [--recipe FILE] [--setting value ...]`. With no model (and no recipe naming one)
/// it runs the embedded demo: a tiny model on the bundled sample, on the CPU, in a few minutes.</summary>
static class TrainCommand
{
    /// <summary>The closing evaluation's size: (examples, new tokens) on a GPU and on the CPU (where the demo must stay short).</summary>
    static (int Examples, int NewTokens) ClosingEvalSize(bool gpu) => gpu ? (32, 256) : (8, 64);

    /// <param name="args">the whole command line, for the workers that --gpus starts</param>
    public static Command Create(TextWriter stdout, TextWriter? stderr = null, IReadOnlyList<string>? args = null)
    {
        var recipe = new Option<string?>("--recipe", "-r") { Description = "YAML recipe; flags override its settings" };
        var dataset = new Option<string?>("--dataset") { Description = "One dataset: file, folder, Hub id org/name, or sample (replaces the recipe's datasets)" };
        var config = new Option<string?>("--dataset-config") { Description = "Subset/config of --dataset (e.g. en)" };
        var split = new Option<string?>("--dataset-split") { Description = "Split of --dataset (default train)" };
        var rows = new Option<int?>("--dataset-rows") { Description = "Use the first N rows of --dataset" };
        var format = new Option<string?>("--dataset-format") { Description = "auto, medical, alpaca or chat" };
        var export = new Option<string?>("--export") { Description = "After training, export base + adapter: gguf[:QUANT] (e.g. gguf:q4_k_m), ollama[:QUANT], hf or gguf-lora" };
        var gpus = new Option<int?>("--gpus") { Description = "Train data-parallel on N GPUs of this machine, one worker process each (NCCL); see docs/distributed.md" };
        var nodes = new Option<int?>("--nnodes") { Description = "Machines taking part (each runs the same command with its --node-rank)" };
        var nodeRank = new Option<int?>("--node-rank") { Description = "This machine's number, 0 to nnodes-1 (0 hosts the rendezvous)" };
        var masterAddr = new Option<string?>("--master-addr") { Description = "Address of the machine with --node-rank 0 (default 127.0.0.1)" };
        var masterPort = new Option<int?>("--master-port") { Description = "TCP port of the rendezvous on that machine (default 29500)" };
        var cmd = new Command("train", "Fine-tune a model with LoRA (no arguments: a tiny demo on the CPU)")
            { recipe, dataset, config, split, rows, format, export, gpus, nodes, nodeRank, masterAddr, masterPort };
        var settings = TrainOptions.Settings.Select(s => (s.Key, Option: new Option<string?>(s.Flag) { Description = s.HelpText, HelpName = s.Type })).ToList();
        foreach (var s in settings) cmd.Options.Add(s.Option);

        cmd.SetAction(p =>
        {
            var worker = DistributedEnvironment.FromProcess();
            if (new Option[] { gpus, nodes, nodeRank, masterAddr, masterPort }.Any(o => p.GetResult(o) is not null))
            {
                if (worker is { WorldSize: > 1 })
                    throw new SharpTuneException("--gpus/--nnodes start workers, but this process already is one (WORLD_SIZE is set); give one or the other");
                var plan = LaunchPlan.Create(p.GetValue(gpus), p.GetValue(nodes), p.GetValue(nodeRank), p.GetValue(masterAddr), p.GetValue(masterPort));
                if (plan.WorldSize > 1)
                    return WorkerLauncher.Run(plan, WorkerCommand.Self(LaunchPlan.WithoutLauncherFlags(args ?? [])), stdout, stderr ?? Console.Error);
            }
            // A recipe or a --model starts from the documented defaults; no arguments at all is the demo.
            bool demo = p.GetValue(recipe) is null && !settings.Any(s => s.Key == "model" && p.GetValue(s.Option) is not null);
            var options = p.GetValue(recipe) is { } file ? TrainOptions.FromYaml(file) : demo ? FineTune.Demo : new TrainOptions();
            foreach (var (key, option) in settings)
                if (p.GetValue(option) is { } value) options = options.With(key, value, "--" + key.Replace('_', '-'));
            if (p.GetValue(dataset) is null && (p.GetValue(config) is not null || p.GetValue(split) is not null || p.GetValue(rows) is not null || p.GetValue(format) is not null))
                throw new SharpTuneException("--dataset-config, --dataset-split, --dataset-rows and --dataset-format describe --dataset; give --dataset too (or set them in the recipe's datasets)");
            if (p.GetValue(dataset) is { } source)
                options = options with
                {
                    Datasets = [new DatasetSpec
                    {
                        Source = ModelLocator.ResolveDataset(source), Config = p.GetValue(config), Split = p.GetValue(split) ?? "train",
                        Rows = p.GetValue(rows) ?? 0, Format = p.GetValue(format) ?? "auto",
                    }],
                };
            else
            {
                if (!demo && p.GetValue(recipe) is null)
                    stdout.WriteLine("note: no --dataset given: training on the bundled sample (400 generated clinical-calculation questions); "
                        + "give --dataset FILE|HUB_ID for your own data");
                options = options with { Datasets = options.Datasets.Select(d => d with { Source = ModelLocator.ResolveDataset(d.Source) }).ToList() };
            }

            var (exportFormat, exportQuant) = p.GetValue(export)?.Split(':', 2) switch
            {
                null => (null, null),
                [var f, var q] => (f, (string?)q),
                [var f] => (f, null),
                _ => (null, null),
            };
            if (exportFormat is not null && !Exporter.Formats.Contains(exportFormat))   // checked before a long run, not after
                throw new SharpTuneException($"--export: expected {string.Join(", ", Exporter.Formats)} (optionally :QUANT, e.g. gguf:q4_k_m), got '{p.GetValue(export)}'");
            bool interactive = !Console.IsOutputRedirected && ReferenceEquals(stdout, Console.Out);
            options.Validate();
            OutputFolder.RequireWritable(options.OutputDir);
            using var session = worker is { WorldSize: > 1 } ? StartWorker(worker, options, stdout, stderr ?? Console.Error) : null;
            if (session is { Environment.IsMaster: false })
            {
                // Ranks other than 0 train their share and write nothing: rank 0 keeps the metrics, checkpoints, adapter and report.
                using var followerStop = new GracefulStop(TextWriter.Null);
                var share = FineTune.Run(options, new SinkList(), comparisons: 0, followerStop.Token, collective: session.Collective);
                session.Finish();
                return share.Summary.Reason == StopReason.Cancelled ? 130 : 0;
            }
            string metricsPath = Path.Combine(options.OutputDir, "metrics.jsonl");
            CheckMetricsForResume(options, metricsPath);
            bool newOutput = !Directory.Exists(options.OutputDir);
            using var metrics = new MetricsLog(metricsPath);
            var sink = new SinkList(new ConsoleProgress(stdout, interactive), metrics);
            using var stop = new GracefulStop(stdout);
            EvalResult? validationEval = null;
            int closingNewTokens = 0;
            FineTuneResult result;
            try
            {
                result = FineTune.Run(options, sink, comparisons: options.Comparisons, stop.Token, new ModelLocator.DownloadProgress(options.Model), collective: session?.Collective, afterTraining: t =>
                {
                    // a short greedy evaluation of base vs fine-tuned on the validation split, in batches no larger than a training batch
                    var (examples, newTokens) = ClosingEvalSize(t.Model.CausalLM.Device.type == DeviceType.CUDA);
                    closingNewTokens = newTokens;
                    validationEval = ModelEvaluator.Validation(t.Model, t.Adapter, t.Data.Validation, examples, newTokens,
                        (long)t.Options.BatchSize * t.Options.MaxLength, progress: EvalFlags.Progress());
                });
            }
            catch when (newOutput && !Directory.Exists(Path.Combine(options.OutputDir, "checkpoints")))
            {
                // A run that failed before its first checkpoint leaves nothing behind in a folder it created.
                metrics.Dispose();
                try { Directory.Delete(options.OutputDir, recursive: true); } catch (IOException) { }
                throw;
            }
            session?.Finish();   // training is over on every rank; what follows is rank 0's alone
            var report = new TrainingReport(options.OutputDir);
            foreach (var c in result.Comparisons) report.AddComparison(c);
            var files = report.Write(metrics.FilePath);

            foreach (var c in result.Comparisons)
            {
                stdout.WriteLine();
                stdout.WriteLine($"{(c.HeldOut ? "Held-out question" : "Example question (from the training data)")}: {c.Question}");
                stdout.WriteLine($"--- before fine-tuning:\n{c.Before.Trim()}");
                stdout.WriteLine($"--- after fine-tuning:\n{c.After.Trim()}");
            }
            stdout.WriteLine();
            if (result.Summary.Reason == StopReason.Cancelled)
            {
                stdout.WriteLine($"Interrupted at step {result.Summary.Steps}; the same command resumes from {Path.Combine(options.OutputDir, "checkpoints")}.");
                return 130;
            }
            if (validationEval is { Count: > 0 })
            {
                string evalDir = Path.Combine(options.OutputDir, "eval");
                EvalJson.Write(validationEval, evalDir);
                var evalReport = EvalReport.Write(validationEval, evalDir, Path.Combine(options.OutputDir, "metrics.jsonl"));
                stdout.WriteLine($"Validation split ({validationEval.Count} examples, greedy, {closingNewTokens} new tokens):");
                EvalCommand.PrintSummary(stdout, validationEval);
                stdout.WriteLine($"Evaluation report: {evalReport.Html}");
            }
            stdout.WriteLine($"Adapter (PEFT format): {result.Summary.AdapterDir}");
            stdout.WriteLine($"Report: {files.Html}");
            string model = string.IsNullOrEmpty(options.Model) ? Path.Combine(options.OutputDir, "tiny-model") : options.Model;
            string formatFlag = options.PromptFormat == PromptStyle.ChatTemplate ? "" : $" --prompt-format {PromptStyles.NameOf(options.PromptFormat)}";
            stdout.WriteLine($"Next: sharptune chat --model {model} --adapter {result.Summary.AdapterDir}{formatFlag}");
            if (exportFormat is not null)
            {
                string name = exportFormat switch { "gguf" => $"model-{exportQuant ?? "f16"}.gguf", "gguf-lora" => "adapter.gguf", "ollama" => "ollama", _ => "merged" };
                stdout.WriteLine($"Exporting ({p.GetValue(export)}):");
                ExportCommand.Run(new ExportOptions(ModelLocator.Resolve(model), Path.Combine(options.OutputDir, "export", name), exportFormat,
                    result.Summary.AdapterDir, exportQuant, Overwrite: true), stdout);
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>Joins the other ranks of a data-parallel run (before anything loads libtorch: the GPU is picked first).</summary>
    static DistributedSession StartWorker(DistributedEnvironment worker, TrainOptions options, TextWriter stdout, TextWriter stderr)
    {
        if (options.Device is not ("auto" or "cuda"))
            throw new SharpTuneException($"device {options.Device}: data-parallel training runs one worker per GPU (cuda:LOCAL_RANK, over NCCL); "
                + "leave device at auto or cuda");
        return DistributedSession.Start(worker, stderr, log: worker.IsMaster ? stdout.WriteLine : null);
    }

    /// <summary>A resumed run appends to metrics.jsonl and reads it back for the report at the end: a damaged file is
    /// refused now, not after the training it would have spoiled.</summary>
    static void CheckMetricsForResume(TrainOptions options, string metricsPath)
    {
        if (!options.Resume || !File.Exists(metricsPath) || SftTrainer.Checkpoints(Path.Combine(options.OutputDir, "checkpoints")).Count == 0)
            return;
        try
        {
            MetricsLog.Read(metricsPath);
        }
        catch (SharpTuneException e)
        {
            throw new SharpTuneException($"{e.Message}; this run would resume into that file: repair it (or delete it to start the metrics anew), the checkpoints are kept");
        }
    }
}
