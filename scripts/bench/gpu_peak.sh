#!/usr/bin/env bash
# Runs a command while sampling the GPU's used memory (nvidia-smi, every 100 ms); prints the peak in GiB after it.
# Device-wide memory: includes the CUDA context and the allocator's cache.
set -u
log=$(mktemp)
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$log" &
sampler=$!
"$@"; rc=$?
kill $sampler 2>/dev/null; wait $sampler 2>/dev/null
base=$(head -1 "$log")
peak=$(sort -n "$log" | tail -1)
awk -v p="$peak" -v b="$base" -v c="$(basename "$1") ${2:-}" 'BEGIN { printf "{\"bench\": \"gpu_peak\", \"command\": \"%s\", \"peak_used_GiB\": %.2f, \"idle_used_GiB\": %.2f}\n", c, p / 1024, b / 1024 }' >&2
exit $rc
