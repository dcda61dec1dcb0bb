#!/usr/bin/env bash
# What a row of a new length costs under activation offload (issue 8 speed), in one call: the 8B-shape QLoRA run of
# bench-qlora-recipe.sh with the MLP recomputed whole (--mlp-chunk 0), 8 steps (step 6 is the sample's 588-token row),
# traced (SHARPTUNE_STEP_TRACE=1: per phase GPU/host ms, and per step the caching allocators' driver calls and .NET's
# collections), once per variant. Prints, per run and step: seconds, tokens, cudaHostAlloc calls and their ms, device
# allocator driver calls, GC pauses, and the phases whose host time exceeds 20 ms. Leaves the logs in OUT/logs.tar.xz and
# the built CUDA extensions in OUT/native.tar.xz (unpacked into ~/.cache/sharptune/native, a later call skips the builds).
#   here:  scripts/device/pack.sh src/SharpTune.Cli
#   there: scripts/device/offload-trace.sh APP.tar.xz TOKENIZER_DIR OUT [NATIVE.tar.xz]
# VARIANTS: "name|ENV=VALUE ...|flags" separated by ';' (default: with offload and without).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helper() { if [ -f "$here/../bench/$1" ]; then echo "$here/../bench/$1"; else echo "$here/$1"; fi; }
tarball=$1; tokenizer=$2; out=$3; native=${4:-}
start=$(date +%s)
mkdir -p "$out" /tmp/app ~/.cache/sharptune/native && tar -xJf "$tarball" -C /tmp/app
[ -n "$native" ] && [ -f "$native" ] && tar -xJf "$native" -C ~/.cache/sharptune/native
warm="--device cuda --max-steps 1 --eval-every 0 --comparisons 0 --save-every 0 --activation-checkpointing true --validation-fraction 0"
SHARPTUNE_STEP_TRACE=1 /tmp/app/SharpTune.Cli train $warm --output-dir /tmp/warm-bf16 > /tmp/warm-bf16.txt 2>&1 &
/tmp/app/SharpTune.Cli train $warm --quantization nf4 --activation-offload true --output-dir /tmp/warm-nf4 > /tmp/warm-nf4.txt 2>&1 &
[ -f /tmp/llama8b/config.json ] || python3 "$(helper make_random_llama8b.py)" /tmp/llama8b "$tokenizer" >/dev/null &
wait
grep -h "unavailable\|error" /tmp/warm-*.txt | head -5
echo "extensions built and model made in $(( $(date +%s) - start )) s"
M="--quantization nf4 --optimizer adamw_8bit --mlp-chunk 0 --lm-head-quantization int8 --loss-chunk 2048"
VARIANTS=${VARIANTS:-"offload||--activation-offload true;no-offload||--activation-offload false"}
IFS=';' read -ra variants <<< "$VARIANTS"
for v in "${variants[@]}"; do
  IFS='|' read -r name envs flags <<< "$v"
  rm -rf "/tmp/run-$name"
  env SHARPTUNE_STEP_TRACE=1 $envs timeout 150 "$(helper gpu_peak.sh)" /tmp/app/SharpTune.Cli train --model /tmp/llama8b \
    --batch-size 1 --gradient-accumulation 1 --warmup-steps 1 --activation-checkpointing true \
    --lora-rank 16 --lora-alpha 16 --save-every 0 --validation-fraction 0 --log-every 1 --output-dir "/tmp/run-$name" --comparisons 0 \
    --dataset sample --packing true --max-length 2048 --max-steps 8 $M $flags >"$out/$name.log" 2>"$out/$name.err"
  echo "== $name: rc $? ($(grep -h gpu_peak "$out/$name.err" | tail -1))"
  python3 - "/tmp/run-$name/metrics.jsonl" "$out/$name.err" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if '"event":"step"' in l]
traces = [json.loads(l) for l in open(sys.argv[2]) if l.startswith('{"trace"')]
prev_s, prev_t = 0, 0
for i, s in enumerate(steps):
    t = traces[i] if i < len(traces) else {}
    a = t.get('allocators') or {}
    g = t.get('gc') or {}
    slow = '; '.join(f"{x['name']} x{x['n']} {x['gpu_ms']:.0f}/{x['host_ms']:.0f}" for x in t.get('intervals', []) if x['host_ms'] > 20 or x['gpu_ms'] > 20)
    print(f"step {s['step']} {s['tokens'] - prev_t} tok {s['elapsed_seconds'] - prev_s:.3f} s | hostalloc {a.get('host_allocs')} {a.get('host_alloc_ms')} ms pinned {a.get('pinned_GiB')} | "
          f"dev alloc/free/retry/sync {a.get('device_allocs')}/{a.get('device_frees')}/{a.get('retries')}/{a.get('stream_syncs')} seg {a.get('segments')} res {a.get('reserved_GiB')} | "
          f"gc {g.get('gen0')}/{g.get('gen1')}/{g.get('gen2')} {g.get('pause_ms')} ms | gpu/host ms: {slow}")
    prev_s, prev_t = s['elapsed_seconds'], s['tokens']
PY
done
tar -cJf "$out/logs.tar.xz" -C "$out" $(cd "$out" && ls *.log *.err) /tmp/warm-bf16.txt /tmp/warm-nf4.txt 2>/dev/null
(cd ~/.cache/sharptune/native && tar -cJf "$out/native.tar.xz" --exclude='*.cu' --exclude='*.log' --exclude='*.lock' --exclude='libLibTorchSharp*' .)
rm -f "$out"/*.log "$out"/*.err
ls -la "$out"
echo "total $(( $(date +%s) - start )) s"
