#!/usr/bin/env bash
# Compressed layers' backward by hand (ActivationCheckpointing.HandBackward) against autograd's form, through
# `sharptune train` on the GPU machine, in one call (about 4 minutes): R1-Distill-Llama-8B shape (random weights, the real
# Llama-3 tokenizer), seq 2048 packed, micro-batch 1, r=16 on all seven, checkpointing; bf16 LoRA with the product's
# defaults, then the QLoRA recipe with the MLP recomputed whole (--mlp-chunk 0), by hand and with
# SHARPTUNE_HAND_BACKWARD=off (autograd's form, main's behaviour), same seeds. Prints bench-qlora.sh's table (bf16 and by
# hand), the autograd run's line, each run's per-step loss, tokens and seconds (the two nf4 runs' losses must agree), and
# with TRACE=1 per-phase GPU and host ms of steps 3 and 4.
#   here:  scripts/device/pack.sh src/SharpTune.Cli
#   there: [TRACE=1] scripts/device/bench-hand-backward.sh APP.tar.xz TOKENIZER_DIR [OUT]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helper() { if [ -f "$here/../bench/$1" ]; then echo "$here/../bench/$1"; else echo "$here/$1"; fi; }
tarball=$1; tokenizer=$2; out=${3:-/tmp/bench-hand-backward}
start=$(date +%s)
mkdir -p "$out" /tmp/app && tar -xJf "$tarball" -C /tmp/app
warm="--device cuda --max-steps 1 --eval-every 0 --comparisons 0 --save-every 0 --activation-checkpointing true --validation-fraction 0"
/tmp/app/SharpTune.Cli train $warm --output-dir /tmp/warm-bf16 > /tmp/warm-bf16.txt 2>&1 &
/tmp/app/SharpTune.Cli train $warm --quantization nf4 --activation-offload true --output-dir /tmp/warm-nf4 > /tmp/warm-nf4.txt 2>&1 &
[ -f /tmp/llama8b/config.json ] || python3 "$(helper make_random_llama8b.py)" /tmp/llama8b "$tokenizer" >/dev/null &
wait
echo "extensions built and model made in $(( $(date +%s) - start )) s"
M="--quantization nf4 --optimizer adamw_8bit --activation-offload true --mlp-chunk 0 --lm-head-quantization int8 --loss-chunk 2048"
[[ ${TRACE:-0} == 1 ]] && export SHARPTUNE_STEP_TRACE=1
BUDGET_S=${BUDGET_S:-150} EXTRA="--comparisons 0" NF4_RUNS="nf4-mlp-whole-hand:$M" bash "$here/bench-qlora.sh" - "$tokenizer" "$out" "" short
# The same run with autograd's form (flags as bench-qlora.sh's train() gives them)
rm -rf /tmp/run-nf4-mlp-whole-autograd
SHARPTUNE_HAND_BACKWARD=off timeout 120 "$(helper gpu_peak.sh)" /tmp/app/SharpTune.Cli train --model /tmp/llama8b \
  --batch-size 1 --gradient-accumulation 1 --warmup-steps 1 --activation-checkpointing true \
  --lora-rank 16 --lora-alpha 16 --save-every 0 --validation-fraction 0 --log-every 1 --output-dir /tmp/run-nf4-mlp-whole-autograd \
  --comparisons 0 --dataset sample --packing true --max-length 2048 --max-steps 8 $M \
  > "$out/nf4-mlp-whole-autograd.log" 2> "$out/nf4-mlp-whole-autograd.err"
echo "nf4-mlp-whole-autograd: rc $? $(grep gpu_peak "$out/nf4-mlp-whole-autograd.err" | tail -1)"
for r in /tmp/run-bf16-lora /tmp/run-nf4-mlp-whole-hand /tmp/run-nf4-mlp-whole-autograd; do
  [ -f "$r/metrics.jsonl" ] || continue
  echo "== $(basename "$r"): step, loss, tokens, seconds"
  python3 -c "
import json,sys
s=[json.loads(l) for l in open(sys.argv[1]) if '\"event\":\"step\"' in l]
prev=0
for x in s: print(x['step'], round(x['loss'],5), x['tokens'], round(x['elapsed_seconds']-prev,3)); prev=x['elapsed_seconds']
a,b=s[1],s[-1]
print('tokens/s steps 2-%d: %.0f' % (b['step'], (b['tokens']-a['tokens'])/(b['elapsed_seconds']-a['elapsed_seconds'])))" "$r/metrics.jsonl"
done
[[ ${TRACE:-0} == 1 ]] && python3 - "$out" <<'PY'
import json, sys, glob, os
for f in sorted(glob.glob(sys.argv[1] + '/*.err')):
    steps = [json.loads(l) for l in open(f) if l.startswith('{"trace"')]
    for s in steps[2:4]:
        print(os.path.basename(f), f"step {s['step']}: reserved peak {s['reserved_peak_GiB']} GiB; " +
              '; '.join(f"{i['name']} x{i['n']}: {i['gpu_ms']} ms (host {i['host_ms']}), peak {i['peak_alloc_GiB']}" for i in s['intervals']))
PY
echo "total $(( $(date +%s) - start )) s"
