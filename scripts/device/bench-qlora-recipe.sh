#!/usr/bin/env bash
# The QLoRA recipe against bf16 LoRA through `sharptune train` on the GPU machine, in one call (about 3 minutes):
# R1-Distill-Llama-8B shape (random weights, the real Llama-3 tokenizer), seq 2048 packed, micro-batch 1, r=16 on all
# seven, checkpointing; bf16 with the product's defaults, then nf4 with the recipe's settings (BATCH2=1: also at the
# recipe's own micro-batch of 2; NF4_RUNS: other runs, as bench-qlora.sh takes them). The CUDA extensions are built by
# two tiny demo runs while the model is made. Prints bench-qlora.sh's table, then each run's per-step loss, tokens and
# seconds.
#   here:  scripts/device/pack.sh src/SharpTune.Cli
#   there: scripts/device/bench-qlora-recipe.sh APP.tar.xz TOKENIZER_DIR [OUT]
# TRACE=1: every step also prints, per phase, GPU and host milliseconds and the allocator's peak (SHARPTUNE_STEP_TRACE;
# adds a host sync per step), summarized after the table.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helper() { if [ -f "$here/../bench/$1" ]; then echo "$here/../bench/$1"; else echo "$here/$1"; fi; }
tarball=$1; tokenizer=$2; out=${3:-/tmp/bench-qlora-recipe}
start=$(date +%s)
mkdir -p "$out" /tmp/app && tar -xJf "$tarball" -C /tmp/app
warm="--device cuda --max-steps 1 --eval-every 0 --comparisons 0 --save-every 0 --activation-checkpointing true --validation-fraction 0"
/tmp/app/SharpTune.Cli train $warm --output-dir /tmp/warm-bf16 > /tmp/warm-bf16.txt 2>&1 &
/tmp/app/SharpTune.Cli train $warm --quantization nf4 --activation-offload true --output-dir /tmp/warm-nf4 > /tmp/warm-nf4.txt 2>&1 &
[ -f /tmp/llama8b/config.json ] || python3 "$(helper make_random_llama8b.py)" /tmp/llama8b "$tokenizer" >/dev/null &
wait
echo "extensions built and model made in $(( $(date +%s) - start )) s"
M="--quantization nf4 --optimizer adamw_8bit --activation-offload true --mlp-chunk 2048 --lm-head-quantization int8 --loss-chunk 2048"
[[ ${TRACE:-0} == 1 ]] && export SHARPTUNE_STEP_TRACE=1
runs="nf4-recipe:$M"
[[ ${BATCH2:-0} == 1 ]] && runs="$runs;nf4-recipe-batch2:$M --batch-size 2"
BUDGET_S=${BUDGET_S:-175} EXTRA="--comparisons 0" NF4_RUNS=${NF4_RUNS:-$runs} \
  bash "$here/bench-qlora.sh" - "$tokenizer" "$out" "" short
for r in /tmp/run-*; do
  [ -f "$r/metrics.jsonl" ] || continue
  echo "== $(basename "$r"): step, loss, tokens, seconds"
  python3 -c "
import json,sys
s=[json.loads(l) for l in open(sys.argv[1]) if '\"event\":\"step\"' in l]
prev=0
for x in s: print(x['step'], round(x['loss'],5), x['tokens'], round(x['elapsed_seconds']-prev,3)); prev=x['elapsed_seconds']" "$r/metrics.jsonl"
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
