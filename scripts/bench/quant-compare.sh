#!/usr/bin/env bash
# Quantized against dense on a model whose weights carry something learned, since no real checkpoint is reachable here:
# a LoRA trained on the bundled sample, merged into its base (`export --format hf`), then for quantization
# none/int8/nf4/fp4: the perplexity on the validation split (the trainer's final evaluation of one step at lr 1e-30,
# which leaves the weights as loaded) and the greedy continuation of a prompt from the sample's test split.
#   scripts/bench/quant-compare.sh [SHARPTUNE_BINARY] [WORK_DIR]
# Without BASE: the demo (`sharptune train` with no arguments: the tiny model, 200 steps), on the CPU (fp32 compute),
# a few minutes on two cores. With BASE=model folder: a LoRA of TRAIN_FLAGS (default: r=64, lr 1e-3, 150 steps of
# 2 x 2048 packed tokens) trained on it first; DEVICE (default cpu; cuda on the GPU machine) runs every step.
set -euo pipefail
cli=${1:-sharptune}; work=${2:-/tmp/quant-compare}
device=${DEVICE:-cpu}
train_flags=${TRAIN_FLAGS:---lora-rank 64 --lora-alpha 64 --learning-rate 1e-3 --max-steps 150 --batch-size 2 --gradient-accumulation 1 --max-length 2048 --activation-checkpointing true}
split="--validation-fraction 0.05 --seed 3407"   # the same held-out examples in training and in every evaluation
mkdir -p "$work" && cd "$work"
if [ -z "${BASE:-}" ]; then
  [ -f run/adapter/adapter_model.safetensors ] || "$cli" train --output-dir run > train.log
  base=run/tiny-model
else
  base=$BASE
  [ -f run/adapter/adapter_model.safetensors ] || "$cli" train --model "$base" --device "$device" --dataset sample --packing true \
    $split $train_flags --warmup-steps 5 --eval-every 0 --save-every 0 --comparisons 0 --output-dir run > train.log
fi
[ -f merged/config.json ] || "$cli" export --model "$base" --adapter run/adapter --format hf --out merged > export.log
prompt="What is the BMI of a patient who weighs 77 kg and is 152 cm tall?"   # from the sample's test split
echo "| quantization | eval loss | perplexity | greedy output (48 tokens) |"
echo "|---|---|---|---|"
for q in none int8 nf4 fp4; do
  rm -rf "eval-$q"
  "$cli" train --model merged --quantization "$q" --device "$device" --dataset sample --max-length 512 --packing true \
    $split --max-steps 1 --learning-rate 1e-30 --warmup-steps 0 --eval-every 0 --save-every 0 --comparisons 0 \
    --output-dir "eval-$q" > "eval-$q.log" 2>&1
  ppl=$(python3 -c "
import json,sys
e=[json.loads(l) for l in open(sys.argv[1]) if '\"event\":\"eval\"' in l]
print('%.4f %.4f' % (e[-1]['loss'], e[-1]['perplexity']))" "eval-$q/metrics.jsonl")
  text=$("$cli" generate --model merged --quantization "$q" --device "$device" --prompt-format r1-reasoning --temperature 0 -n 48 \
    --prompt "$prompt" 2>/dev/null | tr '\n' ' ')
  echo "| $q | ${ppl% *} | ${ppl#* } | ${text:0:200} |"
done
