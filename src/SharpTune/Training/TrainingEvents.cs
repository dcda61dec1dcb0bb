using System.Text.Json.Serialization;

namespace SharpTune.Training;

/// <summary>What a run is about to do, reported once before the first step.</summary>
public sealed record TrainStart(
    string Model,
    string Device,
    long TrainableParameters,
    long TotalParameters,
    int TrainSequences,
    int ValidationSequences,
    int MaxSteps,
    int StartStep,
    string OutputDir);

/// <summary>One optimizer step (after gradient accumulation).</summary>
public sealed record StepMetrics(
    int Step,
    int MaxSteps,
    int Epoch,
    double Loss,
    double LearningRate,
    double GradNorm,
    long Tokens,
    double TokensPerSecond,
    double ElapsedSeconds,
    double EtaSeconds);

/// <summary>Loss on the validation split.</summary>
public sealed record EvalMetrics(int Step, double Loss, double Perplexity, long Tokens);

/// <summary>Why a run ended; written (metrics.jsonl, messages) as max_steps, epochs, early_stopping, cancelled.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<StopReason>))]
public enum StopReason
{
    [JsonStringEnumMemberName("max_steps")] MaxSteps,
    [JsonStringEnumMemberName("epochs")] Epochs,
    [JsonStringEnumMemberName("early_stopping")] EarlyStopping,
    [JsonStringEnumMemberName("cancelled")] Cancelled,
}

public static class StopReasons
{
    /// <summary>The reason as metrics.jsonl writes it, e.g. max_steps.</summary>
    public static string Name(this StopReason reason) => reason switch
    {
        StopReason.MaxSteps => "max_steps",
        StopReason.Epochs => "epochs",
        StopReason.EarlyStopping => "early_stopping",
        _ => "cancelled",
    };
}

/// <summary>How a run ended. <see cref="StepsThisSession"/> is 0 when a resumed run had nothing left to do.</summary>
public sealed record TrainSummary(
    int Steps,
    StopReason Reason,
    double? FinalLoss,
    double? BestEvalLoss,
    string AdapterDir,
    double ElapsedSeconds,
    double TokensPerSecond,
    int StepsThisSession);

/// <summary>Receives a run's progress: the console display, the metrics file and the report are sinks.
/// Calls come from the training thread, in order.</summary>
public interface ITrainingSink
{
    void OnStart(TrainStart start) { }
    void OnStep(StepMetrics step) { }
    void OnEval(EvalMetrics eval) { }
    void OnCheckpoint(int step, string dir) { }
    void OnMessage(string message) { }
    void OnEnd(TrainSummary summary) { }
}
