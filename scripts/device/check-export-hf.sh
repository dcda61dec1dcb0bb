#!/usr/bin/env bash
# GPU-machine proof for `sharptune export --format hf`: transformers loads our merged checkpoint and its logits equal
# base + adapter in PEFT. For each architecture: a tiny model (sharptune init), a PEFT adapter with random A and B
# (peft, init_lora_weights=False), our merge (sharptune export --format hf), then the comparison in fp32 and bf16.
# Here: ./scripts/device/pack.sh src/SharpTune.Cli   (carry artifacts/device), then on the GPU machine:
#   mkdir -p /tmp/app && tar -xJf artifacts/device/SharpTune.Cli.tar.xz -C /tmp/app && ./scripts/device/check-export-hf.sh
# Prints one table; exits 1 if any row fails. ~1 minute.
set -euo pipefail
cd "$(dirname "$0")/../.."
app=${SHARPTUNE_APP:-/tmp/app/SharpTune.Cli}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for arch in qwen2 llama qwen3; do
    "$app" init --tiny "$work/$arch" --arch "$arch" >/dev/null
    python3 scripts/device/check_export_hf.py adapter "$work/$arch" "$work/$arch-adapter"
    "$app" export --model "$work/$arch" --adapter "$work/$arch-adapter" --format hf --out "$work/$arch-merged" >/dev/null
done
python3 scripts/device/check_export_hf.py compare "$work"
