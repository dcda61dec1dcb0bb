using SharpTune.Models;
using SharpTune.Peft;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace SharpTune.Serving;

/// <summary>
/// Several LoRA adapters over one base model, each row of a batch with its own (or none), as vLLM's multi-LoRA
/// serving does. Before a forward pass <see cref="Route"/> says which adapter each row uses; every adapted
/// projection then adds, for each adapter in use, B·A·x·scaling to that adapter's rows only.
/// </summary>
public sealed class AdapterRouter : IDisposable
{
    sealed record Weights(Tensor A, Tensor B, double Scaling);   // A [r, in], B [out, r] in the model's dtype

    readonly CausalLM _model;
    readonly List<string> _names = [];
    readonly Dictionary<Linear, Weights?[]> _byLinear = [];   // per projection, per adapter (null: not targeted)
    (int Adapter, Tensor? Rows)[] _groups = [];              // this pass: adapter index, its rows (null: all rows)

    public IReadOnlyList<string> Names => _names;

    public AdapterRouter(CausalLM model) => _model = model;

    /// <summary>Loads a PEFT LoRA folder as adapter <paramref name="name"/>; returns its index.</summary>
    public int Add(string name, string dir)
    {
        if (_model.Projections.Any(l => l.Adapter is not null))
            throw new SharpTuneException("the base model already has an adapter attached; load the base model alone to serve several adapters");
        using var adapter = LoraAdapter.Load(dir, _model);   // validates names and shapes; disposed (detached) below
        int index = _names.Count;
        foreach (var pair in adapter.Pairs)
        {
            if (!_byLinear.TryGetValue(pair.Target, out var slots))
                _byLinear[pair.Target] = slots = new Weights?[index + 1];
            if (slots.Length <= index) Array.Resize(ref slots, index + 1);
            _byLinear[pair.Target] = slots;
            slots[index] = new Weights(
                pair.A.detach().to(_model.DType).clone().DetachFromDisposeScope(),
                pair.B.detach().to(_model.DType).clone().DetachFromDisposeScope(),
                adapter.Options.Scaling);
        }
        _names.Add(name);
        return index;
    }

    /// <summary>Sets which adapter each row of the next forward pass uses (-1: the base model). Call it inside the
    /// pass's dispose scope: the row indices live as long as the pass.</summary>
    internal void Route(IReadOnlyList<int> adapterOfRow)
    {
        var used = adapterOfRow.Where(a => a >= 0).Distinct().ToList();
        _groups = used.Select(a => (a, adapterOfRow.All(r => r == a) ? null
            : (Tensor?)tensor(Enumerable.Range(0, adapterOfRow.Count).Where(r => adapterOfRow[r] == a).Select(r => (long)r).ToArray(), device: _model.Device))).ToArray();
        foreach (var (linear, weights) in _byLinear)
            linear.Adapter = _groups.Any(g => g.Adapter < weights.Length && weights[g.Adapter] is not null) ? (x, y) => Add(x, y, weights) : null;
    }

    /// <summary>y (the frozen output, a fresh tensor) plus each routed adapter's update on its rows.</summary>
    Tensor Add(Tensor x, Tensor y, Weights?[] weights)
    {
        foreach (var (a, rows) in _groups)
        {
            if (a >= weights.Length || weights[a] is not { } w) continue;
            if (rows is null) return y.add_(Lora(x, w));   // every row uses this one adapter
            y.index_add_(0, rows, Lora(x.index_select(0, rows), w), 1);
        }
        return y;
    }

    static Tensor Lora(Tensor x, Weights w) => F.linear(F.linear(x, w.A), w.B) * w.Scaling;

    public void Dispose()
    {
        foreach (var linear in _byLinear.Keys) linear.Adapter = null;
        foreach (var w in _byLinear.Values.SelectMany(ws => ws)) { w?.A.Dispose(); w?.B.Dispose(); }
    }
}
