#!/usr/bin/env bash
# QLoRA benchmark through `sharptune train` itself on the GPU machine: R1-Distill-Llama-8B shape (random weights, the
# real Llama-3 tokenizer), the bundled sample packed into 2048-token sequences, micro-batch 1, r=16 on all seven,
# activation checkpointing; bf16 LoRA (AdamW) beside nf4 + adamw_8bit in the same call; peak GPU memory device-wide
# (nvidia-smi, minus idle) and steady tokens/s (steps 3..N from metrics.jsonl); then one long sequence to size the
# longest that fits. Prints one JSON line per run.
#   here:  scripts/device/pack.sh src/SharpTune.Cli   (artifacts/device/SharpTune.Cli.tar.xz)
#   there: scripts/device/bench-qlora.sh artifacts/device/SharpTune.Cli.tar.xz .cache/tokenizers/llama3 [OUT] [LONG_SEQ] [PARTS]
# PARTS: "short long" (default) or either alone.
set -uo pipefail
cd "$(dirname "$0")/../.."
tarball=$1; tokenizer=$2; out=${3:-/tmp/bench-qlora}; long=${4:-32768}; parts=${5:-short long}
mkdir -p "$out" /tmp/app && tar -xJf "$tarball" -C /tmp/app
[ -f /tmp/llama8b/config.json ] || python3 scripts/bench/make_random_llama8b.py /tmp/llama8b "$tokenizer"

steady() {   # tokens/s between the 2nd and the last logged step
  python3 -c "
import json,sys
s=[json.loads(l) for l in open(sys.argv[1]) if '\"step\"' in l and '\"event\":\"step\"' in l]
a,b=s[min(1,len(s)-1)],s[-1]
tps=(b['tokens']-a['tokens'])/(b['elapsed_seconds']-a['elapsed_seconds']) if b is not a else b['tokens_per_second']
print(json.dumps({'steps':b['step'],'steady_tokens_per_s':round(tps,1),'last_loss':round(b['loss'],4)}))" "$1"
}
train() {   # name, then extra flags
  local name=$1; shift
  rm -rf "/tmp/run-$name"
  timeout 300 scripts/bench/gpu_peak.sh /tmp/app/SharpTune.Cli train --model /tmp/llama8b \
    --batch-size 1 --gradient-accumulation 1 --warmup-steps 1 --activation-checkpointing true \
    --lora-rank 16 --lora-alpha 16 --save-every 0 --validation-fraction 0 --log-every 1 --output-dir "/tmp/run-$name" "$@" \
    >"$out/$name.log" 2>"$out/$name.err"
  echo "{\"run\": \"$name\", \"rc\": $?, \"memory\": $(grep gpu_peak "$out/$name.err" | tail -1 || echo null), \"speed\": $(steady "/tmp/run-$name/metrics.jsonl" 2>/dev/null || echo null)}"
}
if [[ $parts == *short* ]]; then
train qlora-nf4 --dataset sample --packing true --max-length 2048 --max-steps 8 --quantization nf4 --optimizer adamw_8bit
train bf16-lora --dataset sample --packing true --max-length 2048 --max-steps 8
fi
[[ $parts == *long* ]] || exit 0

# One sequence of $long tokens (a single long example, not packed: causal flash attention), one step.
python3 -c "
import json; words=' '.join('word%d' % (i % 977) for i in range($long * 2))
print(json.dumps({'Question': 'q', 'Complex_CoT': words, 'Response': 'r'}))" > /tmp/long.jsonl
train "qlora-nf4-seq$long" --dataset /tmp/long.jsonl --max-length "$long" --max-steps 1 --loss-on all --quantization nf4 --optimizer adamw_8bit
