#!/usr/bin/env bash
# Compressed layers' backward by hand (ActivationCheckpointing.HandBackward) against autograd's form, through
# `sharptune train` on the GPU machine, in one call (about 5 minutes): R1-Distill-Llama-8B shape (random weights, the real
# Llama-3 tokenizer), seq 2048 packed, micro-batch 1, r=16 on all seven, checkpointing, 8 steps, the same flags as
# bench-qlora.sh's runs. In order: bf16 LoRA (the product's defaults); the QLoRA recipe with the MLP recomputed whole
# (--mlp-chunk 0) by hand; the same with SHARPTUNE_HAND_BACKWARD=off (autograd's form, main's behaviour; same seeds, so
# its losses must agree with the hand run's); the recipe as it stands (MLP pieces of 1024) by hand, if BUDGET_S allows.
# Prints one table (peak GPU memory device-wide minus idle, tokens/s over steps 2-8 and over the full rows), each run's
# per-step loss and seconds, and with TRACE=1 each run's per-phase GPU and host ms of steps 3 and 4.
#   here:  scripts/device/pack.sh src/SharpTune.Cli
#   there: [TRACE=1] [BUDGET_S=300] scripts/device/bench-hand-backward.sh APP.tar.xz TOKENIZER_DIR [OUT]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helper() { if [ -f "$here/../bench/$1" ]; then echo "$here/../bench/$1"; else echo "$here/$1"; fi; }
tarball=$1; tokenizer=$2; out=${3:-/tmp/bench-hand-backward}
start=$(date +%s); deadline=$(( start + ${BUDGET_S:-300} ))
mkdir -p "$out" /tmp/app && tar -xJf "$tarball" -C /tmp/app
warm="--device cuda --max-steps 1 --eval-every 0 --comparisons 0 --save-every 0 --activation-checkpointing true --validation-fraction 0"
/tmp/app/SharpTune.Cli train $warm --output-dir /tmp/warm-bf16 > /tmp/warm-bf16.txt 2>&1 &
/tmp/app/SharpTune.Cli train $warm --quantization nf4 --activation-offload true --output-dir /tmp/warm-nf4 > /tmp/warm-nf4.txt 2>&1 &
[ -f /tmp/llama8b/config.json ] || python3 "$(helper make_random_llama8b.py)" /tmp/llama8b "$tokenizer" >/dev/null &
wait
echo "extensions built and model made in $(( $(date +%s) - start )) s"
[[ ${TRACE:-0} == 1 ]] && export SHARPTUNE_STEP_TRACE=1
train() {   # name, then flags (SHARPTUNE_HAND_BACKWARD from the caller's environment)
  local name=$1; shift
  local left=$(( deadline - $(date +%s) ))
  if [[ $left -lt 40 ]]; then echo "$name: skipped (time budget)"; return; fi
  rm -rf "/tmp/run-$name"
  timeout $(( left < 120 ? left : 120 )) "$(helper gpu_peak.sh)" /tmp/app/SharpTune.Cli train --model /tmp/llama8b \
    --batch-size 1 --gradient-accumulation 1 --warmup-steps 1 --activation-checkpointing true \
    --lora-rank 16 --lora-alpha 16 --save-every 0 --validation-fraction 0 --log-every 1 --output-dir "/tmp/run-$name" \
    --comparisons 0 --dataset sample --packing true --max-length 2048 --max-steps 8 "$@" >"$out/$name.log" 2>"$out/$name.err"
  echo "$name: rc $?"
}
M="--quantization nf4 --optimizer adamw_8bit --activation-offload true --lm-head-quantization int8 --loss-chunk 2048"
train bf16-lora
train nf4-mlp-whole-hand $M --mlp-chunk 0
SHARPTUNE_HAND_BACKWARD=off train nf4-mlp-whole-autograd $M --mlp-chunk 0
train nf4-recipe-hand $M --mlp-chunk 1024
python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
def steps(name):
    f = f'/tmp/run-{name}/metrics.jsonl'
    return [json.loads(l) for l in open(f) if '"event":"step"' in l] if os.path.exists(f) else []
def tps(s, full):
    if len(s) < 3: return None
    rows = [(a, b) for a, b in zip(s[:-1], s[1:]) if not full or b['tokens'] - a['tokens'] == s[2]['tokens'] - s[1]['tokens']]
    return sum(b['tokens'] - a['tokens'] for a, b in rows) / sum(b['elapsed_seconds'] - a['elapsed_seconds'] for a, b in rows)
names = ['bf16-lora', 'nf4-mlp-whole-hand', 'nf4-mlp-whole-autograd', 'nf4-recipe-hand']
base = {k: tps(steps('bf16-lora'), k) for k in (False, True)}
print('| run | peak GPU GiB (minus idle) | tokens/s steps 2-8 | vs bf16 | full rows | vs bf16 |')
print('|---|---|---|---|---|---|')
for n in names:
    s = steps(n)
    if not s: print(f'| {n} | not run | | | | |'); continue
    err = os.path.join(out, n + '.err')
    peak = [json.loads(l) for l in open(err) if '"gpu_peak"' in l]
    mem = f"{peak[-1]['peak_used_GiB'] - peak[-1]['idle_used_GiB']:.2f}" if peak else '-'
    a, f = tps(s, False), tps(s, True)
    rel = lambda v, b: f'{100 * v / b:.0f}%' if v and b else ''
    print(f"| {n} | {mem} | {a:,.0f} | {rel(a, base[False])} | {f:,.0f} | {rel(f, base[True])} |")
for n in names:
    s = steps(n)
    if not s: continue
    prev = 0
    print(f'== {n}: step loss tokens seconds')
    for x in s: print(x['step'], round(x['loss'], 5), x['tokens'], round(x['elapsed_seconds'] - prev, 3)); prev = x['elapsed_seconds']
for n in names:
    err = os.path.join(out, n + '.err')
    if not os.path.exists(err): continue
    for t in [json.loads(l) for l in open(err) if l.startswith('{"trace"')][2:4]:
        print(n, f"step {t['step']}: reserved peak {t['reserved_peak_GiB']} GiB; " +
              '; '.join(f"{i['name']} x{i['n']}: {i['gpu_ms']} ms (host {i['host_ms']}), peak {i['peak_alloc_GiB']}" for i in t['intervals']))
PY
echo "total $(( $(date +%s) - start )) s"
