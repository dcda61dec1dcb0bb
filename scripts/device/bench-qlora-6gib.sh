#!/usr/bin/env bash
# The QLoRA 6 GiB measurement in one device call (about 3.5 minutes; add LONG=131072 for one 131k-token row, +1.5 min):
# bf16 LoRA, then nf4 + adamw_8bit with the recipe's memory settings (offloaded checkpoints, MLP pieces of 1024) and an
# int8 lm_head at loss chunks of 2048 (the two-pass loss: the head expanded twice a step) and of 256 (the recipe), and
# with a bf16 lm_head. Prints one table: peak GPU memory device-wide minus idle, tokens/s, % of bf16.
#   there: scripts/device/bench-qlora-6gib.sh APP.tar.xz TOKENIZER_DIR [OUT]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
memory="--quantization nf4 --optimizer adamw_8bit --activation-offload true --mlp-chunk 1024"
BUDGET_S=${BUDGET_S:-330} EXTRA="--comparisons 0" \
NF4_RUNS="qlora-nf4-int8head-chunk2048:$memory --lm-head-quantization int8 --loss-chunk 2048;qlora-nf4-int8head-chunk256:$memory --lm-head-quantization int8 --loss-chunk 256;qlora-nf4-bf16head:$memory --loss-chunk 256" \
  bash "$here/bench-qlora.sh" "$1" "$2" "${3:-/tmp/bench-qlora}" "${LONG:-}" "short${LONG:+ long}"
