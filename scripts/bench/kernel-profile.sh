#!/usr/bin/env bash
# On the GPU machine: per-kernel GPU times of one training step (Nsight Compute, kernels serialized, clocks left alone),
# through `sharptune train` on a 2-layer model of the 8B shape (a step's kernels repeat per layer; 2 layers keep ncu
# under a minute), checkpointing with kept MLPs. Prints the step's kernel time by kernel name, then the step's sequence.
#   APP_TAR=artifacts/device/SharpTune.Cli.tar.xz TOKENIZERS=/abs/.cache/tokenizers scripts/bench/kernel-profile.sh
# The extensions build in the profiled process (nvcc is not a CUDA program; only the train process's kernels count).
set -u
here=$(cd "$(dirname "$0")" && pwd)
APP_TAR=${APP_TAR:-artifacts/device/SharpTune.Cli.tar.xz}
TOKENIZERS=${TOKENIZERS:-.cache/tokenizers}
app=/tmp/app/SharpTune.Cli
mkdir -p /tmp/app /tmp/models /tmp/data /tmp/runs
[[ -x $app ]] || tar -xJf "$APP_TAR" -C /tmp/app
[[ -s /tmp/data/medical.jsonl ]] || python3 "$here/make_data.py" --rows 800 --out /tmp/data/medical.jsonl
(cd "$here" && TOKENIZER="$TOKENIZERS/llama3" python3 - <<'PY'
import os, shutil, torch
from hf_decode import SHAPES
from transformers import AutoModelForCausalLM
cfg = SHAPES["llama8b"](); cfg.num_hidden_layers = 2
torch.manual_seed(0)
with torch.device("cuda"): m = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
m.generation_config.eos_token_id = None
m.save_pretrained("/tmp/models/llama8b-2layers")
for f in ("tokenizer.json", "tokenizer_config.json"): shutil.copy(os.path.join(os.environ["TOKENIZER"], f), "/tmp/models/llama8b-2layers/")
PY
)
rm -rf /tmp/runs/profile
timeout ${NCU_S:-150} ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base --log-file /tmp/runs/ncu.csv \
  $app train --model /tmp/models/llama8b-2layers --dataset /tmp/data/medical.jsonl --dataset-format medical-o1 --max-length 2048 \
  --batch-size 2 --gradient-accumulation 1 --lora-rank 16 --lora-alpha 16 --packing true --activation-checkpointing true \
  --checkpoint-keep-mlp 2 --save-every 0 --comparisons 0 --device cuda --dtype bfloat16 --resume false --validation-fraction 0 \
  --max-steps 3 --output-dir /tmp/runs/profile > /tmp/runs/profile.log 2>&1 || { echo "ncu failed:"; tail -5 /tmp/runs/profile.log; }
python3 "$here/ncu_sum.py" /tmp/runs/ncu.csv
