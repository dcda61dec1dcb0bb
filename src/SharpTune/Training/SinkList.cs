namespace SharpTune.Training;

/// <summary>Forwards every event to several sinks, in order.</summary>
public sealed class SinkList(params ITrainingSink[] sinks) : ITrainingSink
{
    public void OnStart(TrainStart start) { foreach (var s in sinks) s.OnStart(start); }
    public void OnStep(StepMetrics step) { foreach (var s in sinks) s.OnStep(step); }
    public void OnEval(EvalMetrics eval) { foreach (var s in sinks) s.OnEval(eval); }
    public void OnCheckpoint(int step, string dir) { foreach (var s in sinks) s.OnCheckpoint(step, dir); }
    public void OnMessage(string message) { foreach (var s in sinks) s.OnMessage(message); }
    public void OnEnd(TrainSummary summary) { foreach (var s in sinks) s.OnEnd(summary); }
}
