using static TorchSharp.torch;

namespace SharpTune.Training;

/// <summary>What the trainer needs of an optimizer: <see cref="AdamW"/> (fp32 moments) or <see cref="AdamW8bit"/>.</summary>
public interface IOptimizer : IDisposable
{
    int StepCount { get; }
    void Step(double lr);
    void ZeroGrad();
    /// <summary>Tensors to save for an exact resume, by name; the step count goes with the trainer state.</summary>
    IEnumerable<(string Name, Tensor Tensor)> State();
    void LoadState(Func<string, Tensor> read, int stepCount);
    /// <summary>The names and shapes <see cref="LoadState"/> expects (checked before a resume copies anything).</summary>
    IEnumerable<(string Name, long[] Shape)> StateShapes() => State().Select(s => (s.Name, s.Tensor.shape));
}
