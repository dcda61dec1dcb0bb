#!/usr/bin/env bash
# Quantized against dense on a model whose weights carry something learned, since no real checkpoint is reachable here:
# the demo (`sharptune train` with no arguments: the tiny model, LoRA trained 200 steps on the bundled sample), its
# adapter merged into the base (`export --format hf`), then for quantization none/int8/nf4/fp4: the perplexity on the
# demo's validation split (the trainer's final evaluation of one step at lr 1e-30, which leaves the weights as loaded)
# and the greedy continuation of a prompt from the sample. CPU (fp32 compute), a few minutes on two cores.
#   scripts/bench/quant-compare.sh [SHARPTUNE_BINARY] [WORK_DIR]
set -euo pipefail
cli=${1:-sharptune}; work=${2:-/tmp/quant-compare}
mkdir -p "$work" && cd "$work"
[ -f run/adapter/adapter_model.safetensors ] || "$cli" train --output-dir run > train.log
[ -f merged/config.json ] || "$cli" export --model run/tiny-model --adapter run/adapter --format hf --out merged > export.log
prompt="What is the BMI of a patient who weighs 77 kg and is 152 cm tall?"   # from the sample's test split
for q in none int8 nf4 fp4; do
  rm -rf "eval-$q"
  "$cli" train --model merged --quantization "$q" --device cpu --dataset sample --max-length 512 --packing true \
    --validation-fraction 0.05 --seed 3407 --max-steps 1 --learning-rate 1e-30 --warmup-steps 0 --eval-every 0 --save-every 0 \
    --output-dir "eval-$q" > "eval-$q.log" 2>&1
  ppl=$(python3 -c "
import json,sys
e=[json.loads(l) for l in open(sys.argv[1]) if '\"event\":\"eval\"' in l]
print('%.4f %.4f' % (e[-1]['loss'], e[-1]['perplexity']))" "eval-$q/metrics.jsonl")
  text=$("$cli" generate --model merged --quantization "$q" --device cpu --prompt-format r1-reasoning --temperature 0 -n 48 --prompt "$prompt" 2>/dev/null | tr '\n' ' ')
  echo "| $q | ${ppl% *} | ${ppl#* } | ${text:0:160} |"
done
