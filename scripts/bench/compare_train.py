"""Runs `sharptune train` and transformers+PEFT on the same GPU, one after the other, sampling nvidia-smi, and
prints one table. Used by compare-train.sh (which makes the models and the data); see docs/benchmarks.md.
    python3 compare_train.py --app /tmp/app/SharpTune.Cli --model-dir /tmp/models --data /tmp/data/medical.jsonl RUN...
A RUN is SHAPE:WHO:MODE[:ckpt[:offload]], e.g. qwen1.5b:ours:packed:ckpt, qwen1.5b:hf:full, llama8b:hf:full:ckpt.
MODE packed = real-length examples packed into 2,048-token rows; full = every row 2,048 tokens (no padding).
"""
import argparse, json, os, subprocess, sys, threading, time

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

def run_ours(a, smi, shape, mode, ckpt, log, offload=False):
    row = run_ours_once(a, smi, shape, mode, ckpt, log, {}, offload)
    if "error" in row and "terminate called" in row["error"]:
        # A native abort (e.g. TorchScript on an unexpected libtorch): measure the SDPA path rather than nothing.
        row = run_ours_once(a, smi, shape, mode, ckpt, log, {"SHARPTUNE_ATTENTION": "sdpa"}, offload)
        row["run"] += " (flash kernel aborted; SDPA)"
    return row

def run_ours_once(a, smi, shape, mode, ckpt, log, env, offload):
    out = f"/tmp/runs/{shape}-{mode}-{'ckpt' if ckpt else 'nockpt'}{'-offload' if offload else ''}"
    subprocess.run(["rm", "-rf", out])
    data = a.data if mode == "packed" else a.data_long
    cmd = [a.app, "train", "--model", os.path.join(a.model_dir, shape), "--dataset", data, "--dataset-format", "medical-o1",
           "--output-dir", out, "--max-length", "2048", "--batch-size", "2", "--gradient-accumulation", "1", "--lora-rank", "16",
           "--lora-alpha", "16", "--max-steps", str(a.steps), "--packing", "true" if mode == "packed" else "false",
           "--activation-checkpointing", "true" if ckpt else "false", "--save-every", "0", "--comparisons", "0",
           "--device", "cuda", "--dtype", "bfloat16", "--resume", "false", "--validation-fraction", "0"] + (["--activation-offload", "true"] if offload else [])
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
    row = {"run": f"{shape} SharpTune {mode}{' ckpt' if ckpt else ''}{' offload' if offload else ''}", "rc": p.returncode}
    if p.returncode != 0 or 10 not in steps or a.steps not in steps:
        row["steps_seen"] = len(steps)
        row["error"] = open(log).read()[-600:]
        return row
    (w10, e10), (w60, e60) = steps[10], steps[a.steps]
    row["steady"] = (e60["tokens"] - e10["tokens"]) / (e60["elapsed_seconds"] - e10["elapsed_seconds"])
    row["first10"] = e10["tokens"] / e10["elapsed_seconds"]
    row["run_tps"] = end["tokens_per_second"] if end else None
    row["loss"] = end["final_loss"] if end else None
    row["peak"] = (max(s[1] for s in smi.window(t_start, t_end)) - idle) / 1024
    util = [s[2] for s in smi.window(w10, w60)]
    row["util"] = sum(util) / len(util) if util else None
    row["attention"] = next((l.strip() for l in open(log) if "attention:" in l), "")
    return row

def run_hf(a, smi, shape, mode, ckpt, log):
    cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "hf_train.py"), "--shape", shape, "--seq", "2048", "--batch", "2",
           "--steps", str(a.steps - 3), "--warmup", "3"] + (["--ckpt"] if ckpt else [])
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
    row = {"run": f"{shape} transformers+PEFT {mode}{' ckpt' if ckpt else ''}", "rc": p.returncode}
    if result is None:
        row["error"] = open(log).read()[-600:]
        return row
    row["steady"] = result["tokens_per_s"]
    row["peak"] = (max(s[1] for s in smi.window(t_start, t_end)) - idle) / 1024
    row["alloc"] = result["max_memory_allocated_GiB"]
    util = [s[2] for s in smi.window(marks.get("steady_start", t_start), marks.get("steady_end", t_end))]
    row["util"] = sum(util) / len(util) if util else None
    return row

def fmt(x, spec):
    return format(x, spec) if isinstance(x, (int, float)) else "–"

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", required=True); ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", required=True); ap.add_argument("--data-long", required=True)
    ap.add_argument("--steps", type=int, default=60); ap.add_argument("--logs", default="/tmp/runs/logs")
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.logs, exist_ok=True)
    smi = Smi()
    rows = []
    for spec in a.runs:
        shape, who, mode, *rest = spec.split(":")
        ckpt = "ckpt" in rest
        log = os.path.join(a.logs, spec.replace(":", "_") + ".log")
        t = time.time()
        row = run_ours(a, smi, shape, mode, ckpt, log, "offload" in rest) if who == "ours" else run_hf(a, smi, shape, mode, ckpt, log)
        row["wall"] = time.time() - t
        rows.append(row)
        print(json.dumps(row), flush=True)
    smi.proc.terminate()
    print()
    print(f"| run | steady tok/s (steps 10-{a.steps}) | run tok/s | steps 1-10 tok/s | peak GiB (nvidia-smi, minus idle) | max allocated GiB | mean GPU util % (steady) | final loss |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['run']} | failed (rc {r['rc']}) | | | | | | |")
            continue
        print(f"| {r['run']} | {fmt(r.get('steady'), ',.0f')} | {fmt(r.get('run_tps'), ',.0f')} | {fmt(r.get('first10'), ',.0f')} | "
              f"{fmt(r.get('peak'), '.1f')} | {fmt(r.get('alloc'), '.1f') if 'alloc' in r else 'n/a'} | {fmt(r.get('util'), '.0f')} | {fmt(r.get('loss'), '.4f')} |")
    for r in rows:
        if r.get("attention"): print(f"{r['run']}: {r['attention']}")
        if "error" in r: print(f"{r['run']} FAILED: {r['error']}")

if __name__ == "__main__":
    main()
