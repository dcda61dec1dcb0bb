#!/usr/bin/env bash
# 8-bit AdamW against AdamW on the embedded demo's settings (the tiny model, the bundled sample, 200 steps), both
# through `sharptune train` on one GPU in fp32; prints the two loss curves side by side (every 5th step and each eval)
# and the mean |Δloss| over the run. Uses the packed CLI unpacked in /tmp/app (see bench-qlora.sh).
#   scripts/device/bench-adamw8bit-demo.sh [OUT]
set -uo pipefail
out=${1:-/tmp/bench-adamw8bit}; mkdir -p "$out"
[ -f /tmp/tiny/config.json ] || /tmp/app/SharpTune.Cli init --tiny /tmp/tiny >/dev/null
for opt in adamw adamw_8bit; do
  rm -rf "/tmp/demo-$opt"
  timeout 240 /tmp/app/SharpTune.Cli train --model /tmp/tiny --dataset sample --device cuda --dtype float32 --max-length 512 --packing true \
    --validation-fraction 0.05 --lora-rank 32 --lora-alpha 64 --learning-rate 2e-3 --warmup-steps 10 --max-steps 200 --batch-size 4 \
    --gradient-accumulation 1 --eval-every 50 --save-every 50 --log-every 5 --seed 3407 --optimizer "$opt" --output-dir "/tmp/demo-$opt" \
    >"$out/demo-$opt.log" 2>&1
  cp "/tmp/demo-$opt/metrics.jsonl" "$out/demo-$opt.metrics.jsonl" 2>/dev/null
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
def read(opt):
    rows = [json.loads(l) for l in open(f"{out}/demo-{opt}.metrics.jsonl")]
    return {r["step"]: r["loss"] for r in rows if r["event"] == "step"}, {r["step"]: r["loss"] for r in rows if r["event"] == "eval"}
(a, ae), (b, be) = read("adamw"), read("adamw_8bit")
steps = sorted(set(a) & set(b))
print(json.dumps({"bench": "adamw8bit_vs_adamw_demo", "train_loss": {s: [round(a[s], 4), round(b[s], 4)] for s in steps if s % 25 == 0 or s == steps[-1]},
                  "eval_loss": {s: [round(ae[s], 4), round(be[s], 4)] for s in sorted(set(ae) & set(be))},
                  "mean_abs_diff_train_loss": round(sum(abs(a[s] - b[s]) for s in steps) / len(steps), 4),
                  "mean_abs_step_to_step_change_adamw": round(sum(abs(a[steps[i]] - a[steps[i - 1]]) for i in range(len(steps) // 2, len(steps))) / (len(steps) - len(steps) // 2), 4)}))
PY
