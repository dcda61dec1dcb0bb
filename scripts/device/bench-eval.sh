#!/usr/bin/env bash
# `sharptune eval` throughput (generate task): batched by token budget against one prompt at a time, on a random-
# weight DeepSeek-R1-Distill-Qwen-1.5B-shape model with the real Qwen tokenizer, 256 new tokens per answer
# (random weights almost never stop early), beside transformers' batched generate on the same prompts. One table.
# Needs on the GPU machine: the packed CLI at /tmp/app (here: scripts/device/pack.sh src/SharpTune.Cli; there:
# mkdir -p /tmp/app && tar -xJf artifacts/device/SharpTune.Cli.tar.xz -C /tmp/app), python3 with torch and
# transformers, and the Qwen tokenizer files (./scripts/fetch-test-data.sh here; carry ".cache/tokenizers").
#   scripts/device/bench-eval.sh            # ~3 minutes of GPU time: 64 prompts batched, 12 one at a time
set -euo pipefail
cd "$(dirname "$0")/../.."
app=${APP:-/tmp/app/SharpTune.Cli}
tokenizer=${TOKENIZER_DIR:-.cache/tokenizers/qwen3}
model=${MODEL_DIR:-/tmp/eval-bench-qwen1.5b}
batched=${PROMPTS:-64}
single=${SINGLE_PROMPTS:-12}
new=256

if [[ ! -s $model/model.safetensors ]]; then
    python3 - "$model" <<'PY'
import sys, torch
from transformers import AutoModelForCausalLM, Qwen2Config
cfg = Qwen2Config(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                  vocab_size=151936, max_position_embeddings=131072, tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151643)
torch.manual_seed(0)
AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16).save_pretrained(sys.argv[1])
PY
    cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$model/"
fi

ours() {   # $1 = batch size, $2 = prompts; prints samples/s and generated tokens/s from eval.json
    local out=/tmp/eval-bench-out-$1
    "$app" eval --model "$model" --data sample:medical-calculations --data-split train --limit "$2" --prompt-format r1-reasoning \
        --max-new-tokens $new --batch-size "$1" --token-budget 1000000 --device cuda --metrics rougeL --samples 0 --output "$out" >/dev/null
    python3 -c "import json,sys; t=json.load(open('$out/eval.json'))['models']['model']['throughput']; print(f\"{t['samples_per_second']:.3f} {t['tokens_per_second']:.0f} {t['batches']}\")"
}
read -r b_sps b_tps b_batches < <(ours 64 "$batched")
read -r s_sps s_tps s_batches < <(ours 1 "$single")
hf=$(python3 scripts/bench/hf_eval_generate.py --model "$model" --prompts "$batched" --batch 64 --new $new)
h_sps=$(python3 -c "import json; print(f\"{json.loads('''$hf''')['samples_per_s']:.3f}\")")
h_tps=$(python3 -c "import json; print(f\"{json.loads('''$hf''')['tokens_per_s']:.0f}\")")

printf '\n| R1-Distill-Qwen-1.5B shape, %s new tokens | prompts | batches | samples/s | generated tokens/s |\n|---|---:|---:|---:|---:|\n' $new
printf '| sharptune eval, one at a time (--batch-size 1) | %s | %s | %s | %s |\n' "$single" "$s_batches" "$s_sps" "$s_tps"
printf '| sharptune eval, batched (--batch-size 64) | %s | %s | %s | %s |\n' "$batched" "$b_batches" "$b_sps" "$b_tps"
printf '| transformers generate, batched (64) | %s | %s | %s | %s |\n' "$batched" "$(( (batched + 63) / 64 ))" "$h_sps" "$h_tps"
python3 -c "print(f'\nbatched / one at a time: {$b_sps / $s_sps:.1f}x samples/s (target >= 10x)')"
