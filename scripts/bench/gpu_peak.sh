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
echo "{\"bench\": \"gpu_peak\", \"command\": \"$(basename "$1") ${2:-}\", \"peak_used_GiB\": $(echo "scale=2; $peak/1024" | bc), \"idle_used_GiB\": $(echo "scale=2; $base/1024" | bc)}"
exit $rc
