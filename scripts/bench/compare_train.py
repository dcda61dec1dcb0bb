"""Runs `sharptune train` and transformers+PEFT on the same GPU, one after the other, sampling nvidia-smi, and
prints one table. Used by compare-train.sh (which makes the models and the data); see docs/benchmarks.md.
    python3 compare_train.py --app /tmp/app/SharpTune.Cli --model-dir /tmp/models --data /tmp/data/medical.jsonl RUN...
A RUN is SHAPE:WHO:MODE[:OPTION...], e.g. qwen1.5b:ours:packed:ckpt, qwen1.5b:hf:full, llama8b:hf:full:ckpt.
MODE packed = real-length examples packed into rows of seq tokens; full = every row seq tokens (no padding).
OPTIONs: ckpt (activation checkpointing), ckpt=N (only the first N layers recomputed: checkpoint_layers), keepmlp=N (the
first N recomputed layers keep their MLP's gate and up outputs: checkpoint_keep_mlp), stock (ours: the op-by-op SwiGLU and
rotary embeddings instead of the fused training kernels, SHARPTUNE_TRAINING_KERNELS=off), chunk=N (ours: loss_chunk, tokens
per lm_head + loss chunk; 1024), offload
(activation_offload), seq=L (tokens per row, 2048), batch=B (rows per micro-batch, 2), probe (ours: one step, only
the memory and whether it ran are kept; for the longest-sequence search).
"""
import argparse, json, os, re, subprocess, sys, threading, time

class Smi:
    """nvidia-smi every 200 ms: (time, used MiB, utilisation %)."""
    def __init__(self):
        self.samples = []
        self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used,utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
                                     stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()
    def _read(self):
        for line in self.proc.stdout:
            try:
                mem, util = (float(x) for x in line.split(","))
                self.samples.append((time.time(), mem, util))
            except ValueError:
                pass
    def idle(self):
        time.sleep(0.6)
        return self.samples[-1][1] if self.samples else float("nan")
    def window(self, t0, t1):
        return [s for s in self.samples if t0 <= s[0] <= t1]

def options(rest):
    """The run's options: ckpt (None, 0 = all layers, or N), offload, seq, batch, probe."""
    o = {"ckpt": None, "offload": False, "seq": 2048, "batch": 2, "probe": False, "keepmlp": 0, "stock": False, "chunk": 0}
    for r in rest:
        key, _, value = r.partition("=")
        if key == "ckpt": o["ckpt"] = int(value or 0)
        elif key == "keepmlp": o["keepmlp"] = int(value)
        elif key == "chunk": o["chunk"] = int(value)
        elif key == "stock": o["stock"] = True
        elif key == "offload": o["offload"] = True
        elif key == "probe": o["probe"] = True
        elif key in ("seq", "batch"): o[key] = int(value)
        else: raise SystemExit(f"unknown run option {r!r}")
    return o

def label(shape, who, mode, o):
    ckpt = "" if o["ckpt"] is None else " ckpt" if o["ckpt"] == 0 else f" ckpt {o['ckpt']} layers"
    ckpt += f" keep MLP of {o['keepmlp']}" if o["keepmlp"] else ""
    ckpt += " (op-by-op SwiGLU/rope)" if o["stock"] else ""
    ckpt += f" loss chunk {o['chunk']}" if o["chunk"] else ""
    size = "" if (o["seq"], o["batch"]) == (2048, 2) else f" {o['batch']}x{o['seq']}"
    return f"{shape} {who} {mode}{ckpt}{' offload' if o['offload'] else ''}{size}{' (1 step)' if o['probe'] else ''}"

def run_ours(a, smi, shape, mode, o, log):
    row = run_ours_once(a, smi, shape, mode, o, log, {"SHARPTUNE_TRAINING_KERNELS": "off"} if o["stock"] else {})
    if "error" in row and "terminate called" in row["error"]:
        # A native abort (e.g. TorchScript on an unexpected libtorch): measure the SDPA path rather than nothing.
        row = run_ours_once(a, smi, shape, mode, o, log, {"SHARPTUNE_ATTENTION": "sdpa"})
        row["run"] += " (flash kernel aborted; SDPA)"
    return row

def run_ours_once(a, smi, shape, mode, o, log, env):
    steps = 1 if o["probe"] else a.steps
    out = f"/tmp/runs/{shape}-{mode}-{o['ckpt']}-{o['offload']}-{o['seq']}-{o['batch']}-{o['keepmlp']}-{o['stock']}-{o['chunk']}"
    subprocess.run(["rm", "-rf", out])
    data = a.data if mode == "packed" else a.data_long
    cmd = [a.app, "train", "--model", os.path.join(a.model_dir, shape), "--dataset", data, "--dataset-format", "medical-o1",
           "--output-dir", out, "--max-length", str(o["seq"]), "--batch-size", str(o["batch"]), "--gradient-accumulation", "1", "--lora-rank", "16",
           "--lora-alpha", "16", "--max-steps", str(steps), "--packing", "true" if mode == "packed" else "false",
           "--activation-checkpointing", "false" if o["ckpt"] is None else "true", "--save-every", "0", "--comparisons", "0",
           "--log-every", str(a.log_every), "--device", "cuda", "--dtype", "bfloat16", "--resume", "false", "--validation-fraction", "0"]
    if o["offload"]: cmd += ["--activation-offload", "true"]
    if o["ckpt"]: cmd += ["--checkpoint-layers", str(o["ckpt"])]
    if o["keepmlp"]: cmd += ["--checkpoint-keep-mlp", str(o["keepmlp"])]
    if o["chunk"]: cmd += ["--loss-chunk", str(o["chunk"])]
    idle = smi.idle()
    t_start = time.time()
    metrics = os.path.join(out, "metrics.jsonl")
    steps, end, pos = {}, None, 0
    with open(log, "w") as lf:
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env={**os.environ, **env})
        while True:
            done = p.poll() is not None
            if os.path.exists(metrics):
                with open(metrics) as f:
                    f.seek(pos); chunk = f.read(); 
                lines = chunk.split("\n")
                pos += len(chunk) - len(lines[-1])
                for line in lines[:-1]:
                    e = json.loads(line)
                    if e["event"] == "step": steps[e["step"]] = (time.time(), e)
                    if e["event"] == "end": end = e
            if done: break
            time.sleep(0.05)
    t_end = time.time()
    row = {"run": label(shape, "SharpTune", mode, o), "rc": p.returncode, "seq": o["seq"], "offload": o["offload"], "probe": o["probe"]}
    row["peak"] = (max((s[1] for s in smi.window(t_start, t_end)), default=idle) - idle) / 1024
    if o["probe"]:
        row["ok"] = p.returncode == 0 and 1 in steps
        row["tokens"] = steps[1][1]["tokens"] if 1 in steps else None   # the step's row: full only if the data fills it
        row["step_s"] = steps[1][1]["elapsed_seconds"] if 1 in steps else None
        if not row["ok"]: row["error"] = open(log).read()[-600:]
        return row
    if p.returncode != 0 or 10 not in steps or steps.get(a.steps) is None:
        row["steps_seen"] = len(steps)
        row["error"] = open(log).read()[-600:]
        return row
    (w10, e10), (w60, e60) = steps[10], steps[a.steps]
    row["steady"] = (e60["tokens"] - e10["tokens"]) / (e60["elapsed_seconds"] - e10["elapsed_seconds"])
    row["first10"] = e10["tokens"] / e10["elapsed_seconds"]
    if 1 in steps:   # with log_every 1: the first step apart (one-time costs) from steps 2-10
        e1 = steps[1][1]
        row["step1"] = e1["elapsed_seconds"]
        row["steps2to10"] = (e10["tokens"] - e1["tokens"]) / (e10["elapsed_seconds"] - e1["elapsed_seconds"])
    row["run_tps"] = end["tokens_per_second"] if end else None
    row["loss"] = end["final_loss"] if end else None
    row["flops"] = model_flops(shape, o, row["steady"])
    util = [s[2] for s in smi.window(w10, w60)]
    row["util"] = sum(util) / len(util) if util else None
    row["attention"] = next((l.strip() for l in open(log) if "attention:" in l), "")
    row["kernels"] = next((l.strip() for l in open(log) if "SwiGLU and rotary" in l), "")
    allocated = re.search(r"max allocated ([0-9.]+) GiB", open(log).read())   # the trainer's own allocator statistics
    if allocated: row["alloc"] = float(allocated.group(1))
    return row

def run_hf(a, smi, shape, mode, o, log):
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "hf_train.py"), "--shape", shape, "--seq", str(o["seq"]), "--batch", str(o["batch"]),
           "--steps", str(a.steps - 3), "--warmup", "3"] + ([] if o["ckpt"] is None else ["--ckpt"])
    idle = smi.idle()
    t_start = time.time(); marks = {}; result = None
    with open(log, "w") as lf:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=lf, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in p.stdout:
            lf.write(line)
            try: e = json.loads(line)
            except ValueError: continue
            if "phase" in e: marks[e["phase"]] = time.time()
            else: result = e
        p.wait()
    t_end = time.time()
    row = {"run": label(shape, "transformers+PEFT", mode, o), "rc": p.returncode}
    if result is None:
        row["error"] = open(log).read()[-600:]
        return row
    row["steady"] = result["tokens_per_s"]
    row["peak"] = (max(s[1] for s in smi.window(t_start, t_end)) - idle) / 1024
    row["alloc"] = result["max_memory_allocated_GiB"]
    row["flops"] = model_flops(shape, o, row["steady"])
    util = [s[2] for s in smi.window(marks.get("steady_start", t_start), marks.get("steady_end", t_end))]
    row["util"] = sum(util) / len(util) if util else None
    return row

# Matmul parameters per token (all projections and lm_head; the embedding lookup is no product) and layer sizes.
SHAPES = {"qwen1.5b": dict(layers=28, hidden=1536, inter=8960, heads=12, kv=2, vocab=151936),
          "llama8b": dict(layers=32, hidden=4096, inter=14336, heads=32, kv=8, vocab=128256)}

def model_flops(shape, o, tokens_per_s):
    """Model FLOP/s in the usual convention: 6 x matmul parameters per token (forward, and backward as if every weight
    were trained) plus causal attention over full rows (an upper bound for packed rows), without the recomputation of
    checkpointing; TFLOP/s."""
    c = SHAPES[shape]
    head = c["hidden"] // c["heads"]
    per_layer = c["hidden"] * (c["heads"] * head * 2 + c["kv"] * head * 2) + 3 * c["hidden"] * c["inter"]
    params = c["layers"] * per_layer + c["vocab"] * c["hidden"]
    attention = 6 * c["layers"] * c["hidden"] * o["seq"]   # 12·L·H·T/2: causal
    return (6 * params + attention) * tokens_per_s / 1e12

def longest(rows):
    """Per mode (offload or not): the peak memory's line through the probes (None with fewer than two), and the
    longest row that ran under 80 GiB."""
    out = []
    for offload in (False, True):
        pts = sorted((r["seq"], r["peak"]) for r in rows if r.get("probe") and r.get("ok") and r["offload"] == offload)
        if not pts: continue
        fits = [t for t, m in pts if m <= 80]
        slope = fit = None
        if len(pts) >= 2:
            (t0, m0), (t1, m1) = pts[0], pts[-1]
            slope = (m1 - m0) / (t1 - t0)
            fit = int((80 - m0) / slope + t0) if slope > 0 else None
        out.append((offload, slope * 1024 * 1024 if slope is not None else None, fit, max(fits) if fits else None))
    return out

def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else "–"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True); ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", required=True); ap.add_argument("--data-long", required=True)
    ap.add_argument("--steps", type=int, default=60); ap.add_argument("--logs", default="/tmp/runs/logs")
    ap.add_argument("--log-every", type=int, default=1, help="ours: log_every (1 gives the step-1 and steps 2-10 columns)")
    ap.add_argument("--deadline", type=float, default=0, help="unix time after which no further run starts (0: none)")
    ap.add_argument("--matmul-tflops", type=float, default=0, help="the card's measured bf16 matmul rate, for the MFU column")
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.logs, exist_ok=True)
    smi = Smi()
    rows = []
    for spec in a.runs:
        shape, who, mode, *rest = spec.split(":")
        o = options(rest)
        if a.deadline and time.time() > a.deadline:
            rows.append({"run": label(shape, who, mode, o), "rc": None, "error": "not run: the call's time ran out"}); continue
        log = os.path.join(a.logs, spec.replace(":", "_").replace("=", "") + ".log")
        t = time.time()
        row = run_ours(a, smi, shape, mode, o, log) if who == "ours" else run_hf(a, smi, shape, mode, o, log)
        row["wall"] = time.time() - t
        rows.append(row)
        print(json.dumps(row), flush=True)
    smi.proc.terminate()
    print()
    peak = a.matmul_tflops
    print(f"| run | steady tok/s (steps 10-{a.steps}) | run tok/s | step 1 s | steps 2-10 tok/s | model TFLOP/s{f' (% of {peak:.0f})' if peak else ''} "
          "| device peak GiB (nvidia-smi − idle) | allocator max allocated GiB | mean GPU util % (steady) | final loss |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("probe"):
            continue
        if "error" in r:
            print(f"| {r['run']} | failed (rc {r['rc']}) | | | | | {fmt(r.get('peak'), '.1f')} | | | |")
            continue
        flops = fmt(r.get("flops"), ".0f") + (f" ({100 * r['flops'] / peak:.0f}%)" if peak and r.get("flops") else "")
        print(f"| {r['run']} | {fmt(r.get('steady'), ',.0f')} | {fmt(r.get('run_tps'), ',.0f')} | {fmt(r.get('step1'), '.2f')} | {fmt(r.get('steps2to10'), ',.0f')} | "
              f"{flops} | {fmt(r.get('peak'), '.1f')} | {fmt(r.get('alloc'), '.1f') if 'alloc' in r else 'n/a'} | {fmt(r.get('util'), '.0f')} | {fmt(r.get('loss'), '.4f')} |")
    probes = [r for r in rows if r.get("probe")]
    if probes:
        print("\n| longest-sequence probe (one step, micro-batch 1) | ran | tokens in the step | step s | device peak GiB (nvidia-smi − idle) |\n|---|---|---|---|---|")
        for r in probes:
            print(f"| {r['run']} | {'yes' if r.get('ok') else 'no'} | {fmt(r.get('tokens'), ',')} | {fmt(r.get('step_s'), '.1f')} | {fmt(r.get('peak'), '.1f')} |")
        for offload, kib, fit, seen in longest(rows):
            reach = (f"{kib:.0f} KiB per token; 80 GiB reached at ~{fit:,} tokens by the line through the probes" if fit
                     else "one probe, no line" if kib is None else "no growth measured")
            print(f"{'with' if offload else 'without'} activation_offload: {reach}; "
                  f"longest run that stayed under 80 GiB: {f'{seen:,} tokens' if seen else 'none'}")
    for r in rows:
        if r.get("attention"): print(f"{r['run']}: {r['attention']}")
        if r.get("kernels"): print(f"{r['run']}: {r['kernels']}")
        if "error" in r: print(f"{r['run']} FAILED: {r['error']}")

if __name__ == "__main__":
    main()
