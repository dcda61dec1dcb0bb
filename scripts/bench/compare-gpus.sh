#!/usr/bin/env bash
# On a machine with two GPUs: data-parallel `sharptune train` on 1 GPU, on `--gpus 2`, and as two "machines"
# (`--nnodes 2 --node-rank 0/1 --gpus 1` over the TCP rendezvous on this host), plus the equivalence of 2 GPUs × b
# with 1 GPU × b with 2-step accumulation. Prints one table per shape.
#   APP_TAR=artifacts/device/SharpTune.Cli.tar.xz TOKENIZERS=.cache/tokenizers scripts/bench/compare-gpus.sh [15b] [8b]
# STEPS (30) and STEPS8 (12) set the steps per run; BUDGET_S skips the 8B part when the 1.5B part took longer than it.
set -u
here=$(cd "$(dirname "$0")" && pwd)
APP_TAR=${APP_TAR:-artifacts/device/SharpTune.Cli.tar.xz}
TOKENIZERS=${TOKENIZERS:-.cache/tokenizers}
parts=${*:-15b 8b}
app=/tmp/app/SharpTune.Cli
start=$SECONDS
mkdir -p /tmp/app /tmp/models /tmp/data /tmp/runs
[[ -x $app ]] || tar -xJf "$APP_TAR" -C /tmp/app
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader
[[ -s /tmp/data/medical.jsonl ]] || python3 "$here/make_data.py" --rows 2000 --out /tmp/data/medical.jsonl
for part in $parts; do
case $part in
15b)
    [[ -s /tmp/models/qwen1.5b/config.json ]] || (cd "$here" && python3 make_model.py --shape qwen1.5b --tokenizer "$TOKENIZERS/qwen3" --out /tmp/models/qwen1.5b)
    (cd "$here" && python3 compare_gpus.py --app $app --model /tmp/models/qwen1.5b --data /tmp/data/medical.jsonl --label 1.5B --steps ${STEPS:-30}) || exit 1 ;;
8b)
    if (( SECONDS - start > ${BUDGET_S:-100000} )); then echo "8B part skipped: $((SECONDS - start)) s used"; continue; fi
    rm -rf /tmp/models/qwen1.5b
    [[ -s /tmp/models/llama8b/config.json ]] || python3 "$here/make_random_llama8b.py" /tmp/models/llama8b "$TOKENIZERS/llama3"
    (cd "$here" && python3 compare_gpus.py --app $app --model /tmp/models/llama8b --data /tmp/data/medical.jsonl --label 8B \
        --steps ${STEPS8:-12} --steady-from 4 --ckpt true --runs ${RUNS8:-1gpu,2gpu}) ;;
esac
done
echo "total $((SECONDS - start)) s"
