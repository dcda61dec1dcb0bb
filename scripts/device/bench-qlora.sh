#!/usr/bin/env bash
# QLoRA benchmark through `sharptune train` itself on the GPU machine: R1-Distill-Llama-8B shape (random weights, the
# real Llama-3 tokenizer), the bundled sample packed into 2048-token sequences, micro-batch 1, r=16 on all seven,
# activation checkpointing; bf16 LoRA (AdamW, the product's defaults otherwise) and nf4 + adamw_8bit runs in the same
# call; peak GPU memory device-wide (nvidia-smi, minus idle) and steady tokens/s (steps 2..N from metrics.jsonl); then
# single long sequences (nf4) to find the longest that fits in 80 GiB. Prints one JSON line per run, then one table.
#   here:  scripts/device/pack.sh src/SharpTune.Cli   (artifacts/device/SharpTune.Cli.tar.xz)
#   there: scripts/device/bench-qlora.sh APP.tar.xz TOKENIZER_DIR [OUT] [LONG_SEQS] [PARTS]
# LONG_SEQS: space-separated lengths, tried in order until one fails (default "65536 131072").
# PARTS: "short long" (default) or either alone. EXTRA: flags added to every run (e.g. "--comparisons 0").
# NF4_RUNS: the short part's nf4 runs, "name:flags" separated by ';' (default: one run with the recipe's settings);
# flags with --batch-size replace the default micro-batch of 1.
# LONG_FLAGS: the long runs' memory flags. BUDGET_S: seconds after which no further run starts (0: none).
# BF16_LAST=1: the bf16 run after the nf4 runs (when the time budget may not reach it).
# The helpers (gpu_peak.sh, make_random_llama8b.py) are looked up in scripts/bench or beside this script.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helper() { if [ -f "$here/../bench/$1" ]; then echo "$here/../bench/$1"; else echo "$here/$1"; fi; }
tarball=$1; tokenizer=$2; out=${3:-/tmp/bench-qlora}; longs=${4:-65536 131072}; parts=${5:-short long}
recipe_flags="--quantization nf4 --optimizer adamw_8bit --loss-chunk 256 --activation-offload true --mlp-chunk 1024 --lm-head-quantization int8"
NF4_RUNS=${NF4_RUNS:-qlora-nf4:$recipe_flags}
LONG_FLAGS=${LONG_FLAGS:---quantization nf4 --optimizer adamw_8bit --loss-chunk 256 --activation-offload true --mlp-chunk 4096 --lm-head-quantization int8}
deadline=0; [[ ${BUDGET_S:-0} -gt 0 ]] && deadline=$(( $(date +%s) + BUDGET_S ))
mkdir -p "$out" /tmp/app && { [ "$tarball" = - ] || tar -xJf "$tarball" -C /tmp/app; }   # "-": already unpacked in /tmp/app
[ -f /tmp/llama8b/config.json ] || python3 "$(helper make_random_llama8b.py)" /tmp/llama8b "$tokenizer" >/dev/null

steady() {   # tokens/s between the 2nd and the last logged step
  python3 -c "
import json,sys
s=[json.loads(l) for l in open(sys.argv[1]) if '\"event\":\"step\"' in l]
a,b=s[min(1,len(s)-1)],s[-1]
tps=(b['tokens']-a['tokens'])/(b['elapsed_seconds']-a['elapsed_seconds']) if b is not a else b['tokens_per_second']
print(json.dumps({'steps':b['step'],'steady_tokens_per_s':round(tps,1),'last_loss':round(b['loss'],4)}))" "$1"
}
train() {   # name, time limit, then extra flags
  local name=$1 limit=$2; shift 2
  if [[ $deadline -gt 0 ]]; then
    local left=$(( deadline - $(date +%s) ))
    if [[ $left -lt 30 ]]; then echo "{\"run\": \"$name\", \"skipped\": \"time budget\"}" | tee -a "$out/runs.jsonl"; return 1; fi
    [[ $left -lt $limit ]] && limit=$left
  fi
  rm -rf "/tmp/run-$name"
  local batch="--batch-size 1"; [[ " $* " == *" --batch-size "* ]] && batch=""   # a run may set its own micro-batch
  timeout "$limit" "$(helper gpu_peak.sh)" /tmp/app/SharpTune.Cli train --model /tmp/llama8b \
    $batch --gradient-accumulation 1 --warmup-steps 1 --activation-checkpointing true \
    --lora-rank 16 --lora-alpha 16 --save-every 0 --validation-fraction 0 --log-every 1 --output-dir "/tmp/run-$name" ${EXTRA:-} "$@" \
    >"$out/$name.log" 2>"$out/$name.err"
  local rc=$?
  echo "{\"run\": \"$name\", \"rc\": $rc, \"flags\": \"$*\", \"memory\": $(grep gpu_peak "$out/$name.err" | tail -1 || echo null), \"speed\": $(steady "/tmp/run-$name/metrics.jsonl" 2>/dev/null || echo null)}" | tee -a "$out/runs.jsonl"
  return $rc
}
: > "$out/runs.jsonl"
if [[ $parts == *short* ]]; then
  IFS=';' read -ra runs <<< "$NF4_RUNS"
  [[ ${BF16_LAST:-0} == 1 ]] || train bf16-lora 240 --dataset sample --packing true --max-length 2048 --max-steps 8
  for run in "${runs[@]}"; do
    train "${run%%:*}" 240 --dataset sample --packing true --max-length 2048 --max-steps 8 ${run#*:}
  done
  [[ ${BF16_LAST:-0} == 1 ]] && train bf16-lora 240 --dataset sample --packing true --max-length 2048 --max-steps 8
fi
if [[ $parts == *long* ]]; then
  # One sequence of N tokens (a single long example, not packed: causal flash attention), one step.
  for long in $longs; do
    python3 -c "
import json; words=' '.join('word%d' % (i % 977) for i in range($long * 2))
print(json.dumps({'Question': 'q', 'Complex_CoT': words, 'Response': 'r'}))" > /tmp/long.jsonl
    train "qlora-nf4-seq$long" 300 --dataset /tmp/long.jsonl --max-length "$long" --max-steps 1 --loss-on all $LONG_FLAGS || break
  done
fi
python3 - "$out/runs.jsonl" <<'PY'
import json, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bf16 = next((r['speed']['steady_tokens_per_s'] for r in runs if r['run'] == 'bf16-lora' and r.get('speed')), None)
print('| run | rc | peak GPU memory (GiB, minus idle) | tokens/s | vs bf16 |')
print('|---|---|---|---|---|')
for r in runs:
    if 'skipped' in r: print(f"| {r['run']} | skipped | - | - | |"); continue
    m = r['memory']; s = r['speed']
    mem = f"{m['peak_used_GiB'] - m['idle_used_GiB']:.2f}" if m else '-'
    tps = s['steady_tokens_per_s'] if s else None
    rel = f"{100 * tps / bf16:.0f}%" if tps and bf16 and 'seq' not in r['run'] else ''
    print(f"| {r['run']} | {r['rc']} | {mem} | {tps if tps else '-'} | {rel} |")
PY
