"""Data parallelism through `sharptune train` on one and two GPUs of one machine, and as two "machines" (two node
ranks over the TCP rendezvous on this host); prints one table. Used by compare-gpus.sh (which makes the model and data).
    python3 compare_gpus.py --app /tmp/app/SharpTune.Cli --model /tmp/models/qwen1.5b --data /tmp/data/medical.jsonl --label 1.5B
Runs (same per-GPU micro-batch): 1 GPU with accumulation 1 (the scaling baseline), 1 GPU with accumulation 2 (the
reference for equivalence), --gpus 2 with accumulation 1, and --nnodes 2 --gpus 1 (node ranks 0 and 1, one GPU each).
Equivalence: the two-GPU runs' per-step losses and final adapters against the 1-GPU accumulation-2 run.
"""
import argparse, json, os, subprocess, sys, time

def train_args(a, out, accumulation):
    return ["train", "--model", a.model, "--dataset", a.data, "--dataset-format", "medical-o1", "--output-dir", out,
            "--max-length", "2048", "--batch-size", "2", "--gradient-accumulation", str(accumulation), "--lora-rank", "16",
            "--lora-alpha", "16", "--max-steps", str(a.steps), "--packing", "true", "--activation-checkpointing", a.ckpt,
            "--save-every", "0", "--comparisons", "0", "--dtype", "bfloat16", "--resume", "false", "--validation-fraction", "0"]

def run(a, name, accumulation, mode):
    out = f"/tmp/runs/{a.label}-{name}"
    subprocess.run(["rm", "-rf", out])
    log = open(f"{a.logs}/{a.label}-{name}.log", "w")
    env = dict(os.environ)
    t0 = time.time()
    if mode == "1gpu":
        env["CUDA_VISIBLE_DEVICES"] = "0"
        rc = subprocess.run([a.app] + train_args(a, out, accumulation) + ["--device", "cuda"], stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    elif mode == "2gpu":
        rc = subprocess.run([a.app] + train_args(a, out, accumulation) + ["--gpus", "2", "--master-port", "29611"], stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    else:   # two "machines": node ranks 0 and 1, one GPU each, rendezvous over TCP on this host
        procs = []
        for node in (0, 1):
            e = dict(env, CUDA_VISIBLE_DEVICES=str(node))
            procs.append(subprocess.Popen([a.app] + train_args(a, out, accumulation) + ["--gpus", "1", "--nnodes", "2", "--node-rank", str(node),
                                           "--master-addr", "127.0.0.1", "--master-port", "29612"], stdout=log, stderr=subprocess.STDOUT, env=e))
        rc = max(p.wait() for p in procs)
    wall = time.time() - t0
    steps, end = {}, None
    try:
        for line in open(os.path.join(out, "metrics.jsonl")):
            e = json.loads(line)
            if e["event"] == "step": steps[e["step"]] = e
            if e["event"] == "end": end = e
    except FileNotFoundError:
        pass
    row = {"name": name, "rc": rc, "wall": wall, "out": out, "steps": steps}
    first = a.steady_from
    if rc == 0 and first in steps and a.steps in steps:
        s0, s1 = steps[first], steps[a.steps]
        row["steady"] = (s1["tokens"] - s0["tokens"]) / (s1["elapsed_seconds"] - s0["elapsed_seconds"])
        row["run_tps"] = end["tokens_per_second"] if end else None
    else:
        log.flush()
        row["error"] = open(f"{a.logs}/{a.label}-{name}.log").read()[-1500:]
    return row

def adapter(out):
    from safetensors.torch import load_file
    return load_file(os.path.join(out, "adapter", "adapter_model.safetensors"))

def compare(ref, other):
    """max |loss difference| over steps, and max |adapter difference| / max |adapter|."""
    if "error" in ref or "error" in other: return None
    losses = max(abs(ref["steps"][s]["loss"] - other["steps"][s]["loss"]) for s in ref["steps"])
    A, B = adapter(ref["out"]), adapter(other["out"])
    diff = max((A[k].float() - B[k].float()).abs().max().item() for k in A)
    scale = max(A[k].float().abs().max().item() for k in A if "lora_B" in k)
    return losses, diff, scale

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True); ap.add_argument("--model", required=True); ap.add_argument("--data", required=True)
    ap.add_argument("--label", required=True); ap.add_argument("--steps", type=int, default=30); ap.add_argument("--steady-from", type=int, default=10)
    ap.add_argument("--ckpt", default="false"); ap.add_argument("--logs", default="/tmp/runs")
    ap.add_argument("--runs", default="2gpu,1gpu,1gpu-acc2,2nodes")
    a = ap.parse_args()
    os.makedirs(a.logs, exist_ok=True)
    plan = {"1gpu": (1, "1gpu"), "1gpu-acc2": (2, "1gpu"), "2gpu": (1, "2gpu"), "2nodes": (1, "2nodes")}
    rows = {}
    for name in a.runs.split(","):
        acc, mode = plan[name]
        rows[name] = run(a, name, acc, mode)
        print(f"  {a.label} {name}: rc {rows[name]['rc']}, {rows[name]['wall']:.0f} s", file=sys.stderr, flush=True)
        if "error" in rows[name] and name in ("2gpu", "2nodes"):   # fail fast: the rest would only spend GPU time
            print(f"{name} failed:\n{rows[name]['error']}")
            sys.exit(1)
    base = rows.get("1gpu", {}).get("steady")
    labels = {"1gpu": "1 GPU, accumulation 1", "1gpu-acc2": "1 GPU, accumulation 2 (equivalence reference)",
              "2gpu": "`--gpus 2`, accumulation 1", "2nodes": "`--nnodes 2 --node-rank 0/1 --gpus 1` (TCP rendezvous, one host)"}
    print(f"\n## data parallel, {a.label} shape, packed 2,048-token rows, micro-batch 2 per GPU, LoRA r=16 all projections, bf16, "
          f"checkpointing {a.ckpt}, {a.steps} steps")
    print("| run | steady tok/s (global) | scaling vs 1 GPU | run tok/s | final loss | wall s |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        if "error" in r:
            print(f"| {labels[name]} | failed (rc {r['rc']}) | | | | {r['wall']:.0f} |")
            continue
        scale = f"{r['steady'] / base:.2f}x" if base else ""
        last = r["steps"][a.steps]["loss"]
        print(f"| {labels[name]} | {r['steady']:,.0f} | {scale} | {r['run_tps']:,.0f} | {last:.4f} | {r['wall']:.0f} |")
    ref = rows.get("1gpu-acc2")
    if ref:
        print("\n| equivalence vs 1 GPU accumulation 2 | max abs loss diff (all steps) | max abs adapter diff | max abs lora_B |\n|---|---|---|---|")
        for name in ("2gpu", "2nodes"):
            if name in rows:
                c = compare(ref, rows[name])
                print(f"| {labels[name]} | " + (" | ".join(f"{x:.3g}" for x in c) if c else "failed | | ") + " |")
    for name, r in rows.items():
        if "error" in r: print(f"\n### {name} failed:\n```\n{r['error']}\n```")

if __name__ == "__main__":
    main()
