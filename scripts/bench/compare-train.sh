#!/usr/bin/env bash
# On the GPU machine: `sharptune train` against transformers+PEFT (and `sharptune generate` against transformers
# `generate`) in one call, on random-weight models of real shapes with real tokenizers. Prints one table per part.
#   APP_TAR=artifacts/device/SharpTune.Cli.tar.xz TOKENIZERS=.cache/tokenizers scripts/bench/compare-train.sh [parts]
# parts (default "train15 decode train8 longseq"; also decodecheck): train15 = 1.5B shape, ours packed (checkpointing
# on; off) and transformers+PEFT with checkpointing; decode = batch 1 and 64; train8 = 8B shape (Llama, llama3 rope
# scaling), checkpointing on, ours (keeping the MLP's gate/up outputs of KEEP8 layers, 25; and without) and
# transformers+PEFT; decodecheck = teacher-forced logits of the decode paths against transformers fp32
# (decode_check.py); longseq = 8B, micro-batch 1, one step at a few
# row lengths with and without activation_offload, and the longest row under 80 GiB by the line through them.
# RUNS15 / RUNS8 / RUNSLONG override the run lists (see compare_train.py); STEPS the steps per run (30); BUDGET_S the
# seconds after which no further run starts (0: none). Needs ~3 GB of disk for 1.5B, ~17 GB for 8B.
set -u
here=$(cd "$(dirname "$0")" && pwd)
APP_TAR=${APP_TAR:-artifacts/device/SharpTune.Cli.tar.xz}
TOKENIZERS=${TOKENIZERS:-.cache/tokenizers}
parts=${*:-train15 decode train8 longseq}
deadline=0; [[ ${BUDGET_S:-0} -gt 0 ]] && deadline=$(( $(date +%s) + BUDGET_S ))
app=/tmp/app/SharpTune.Cli
mkdir -p /tmp/app /tmp/models /tmp/data /tmp/runs
[[ -x $app ]] || tar -xJf "$APP_TAR" -C /tmp/app
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader
[[ -s /tmp/data/medical.jsonl ]] || python3 "$here/make_data.py" --rows 800 --out /tmp/data/medical.jsonl
[[ -s /tmp/data/long.jsonl ]] || python3 "$here/make_data.py" --rows 300 --scale 10 --seed 1 --out /tmp/data/long.jsonl
model() { [[ -s /tmp/models/$1/config.json ]] || (cd "$here" && python3 make_model.py --shape "$1" --tokenizer "$TOKENIZERS/$2" --out "/tmp/models/$1"); }
# The card's bf16 matmul rate on random data (8192³, mean of 10 after 3 warm-ups), for the MFU column.
[[ -n ${MATMUL_TFLOPS:-} ]] || MATMUL_TFLOPS=$(python3 -c '
import torch, time
a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
for _ in range(3): a @ b
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(10): a @ b
torch.cuda.synchronize(); print(f"{10 * 2 * 8192**3 / (time.perf_counter() - t) / 1e12:.0f}")')
echo "bf16 matmul 8192^3: $MATMUL_TFLOPS TFLOP/s"
compare() { (cd "$here" && python3 compare_train.py --steps ${STEPS:-30} --app $app --model-dir /tmp/models --data /tmp/data/medical.jsonl \
    --data-long /tmp/data/long.jsonl --deadline $deadline --matmul-tflops "$MATMUL_TFLOPS" "$@"); }

for part in $parts; do
case $part in
train15)
    model qwen1.5b qwen3
    compare ${RUNS15:-qwen1.5b:ours:packed:ckpt qwen1.5b:ours:packed qwen1.5b:hf:full:ckpt} ;;
train8)
    rm -rf /tmp/models/qwen1.5b
    model llama8b llama3
    compare ${RUNS8:-llama8b:ours:packed:ckpt:keepmlp=${KEEP8:-25} llama8b:hf:full:ckpt llama8b:ours:packed:ckpt} ;;
longseq)
    # Rows of packed real-length examples: under flash attention a row's memory is that of one document as long
    # (activations grow with tokens, not with tokens²), at a fraction of the attention's compute.
    rm -rf /tmp/models/qwen1.5b
    model llama8b llama3
    # The model's whole context first (131,072 tokens), with and without offload; then half of it for the line.
    compare ${RUNSLONG:-llama8b:ours:packed:ckpt:batch=1:seq=131072:probe llama8b:ours:packed:ckpt:offload:batch=1:seq=131072:probe \
        llama8b:ours:packed:ckpt:batch=1:seq=65536:probe llama8b:ours:packed:ckpt:offload:batch=1:seq=65536:probe} ;;
decodecheck)
    # Teacher-forced logits of every decode path against transformers fp32 (~1.5 min: the native builds dominate).
    model qwen1.5b qwen3
    (cd "$here" && PYTHONUNBUFFERED=1 python3 decode_check.py --app $app --model /tmp/models/qwen1.5b --out /tmp/runs/decode_check) ;;
decode)
    model qwen1.5b qwen3
    prompt="A 54-year-old man weighing 82 kg with chronic kidney disease (creatinine clearance 38 mL/min) is started on enoxaparin for a deep vein thrombosis. The usual dose is 1 mg/kg every 12 hours; with clearance below 30 mL/min it becomes 1 mg/kg once daily. He also needs an infusion of 900 mL over 6 hours through a set with a drop factor of 20 drops/mL. What dose of enoxaparin should he receive, how often, and what is the drip rate in drops per minute? Explain each step of the calculation, state the assumptions you make about renal function, and say what you would monitor."
    $app generate --model /tmp/models/qwen1.5b --prompt "$prompt" --max-new-tokens 256 --temperature 0 --json > /tmp/runs/dec1.json 2>&1
    $app generate --model /tmp/models/qwen1.5b --prompt "$prompt" --max-new-tokens 256 --temperature 0 2>/tmp/runs/dec1s.err >/dev/null
    args=(); for i in $(seq 64); do args+=(--prompt "$prompt"); done
    $app generate --model /tmp/models/qwen1.5b "${args[@]}" --max-new-tokens 128 --temperature 0 --json > /tmp/runs/dec64.json 2>&1
    plen=$(python3 -c 'import json;print(len(json.load(open("/tmp/runs/dec1.json"))["prompt_ids"]))' 2>/dev/null || echo 153)
    (cd "$here" && python3 hf_decode.py --shape qwen1.5b --prefill "$plen" --gen 256) > /tmp/runs/hfdec.json
    python3 - "$plen" <<'PY'
import json, re, sys
def ours(path):
    try: return json.load(open(path))["timings"]["decode_tokens_per_second"]
    except Exception as e: return f"failed: {open(path).read()[-300:]}"
stream = re.findall(r"([0-9.]+) tokens/s", open("/tmp/runs/dec1s.err").read())
hf = json.load(open("/tmp/runs/hfdec.json"))
b1, b64 = ours("/tmp/runs/dec1.json"), ours("/tmp/runs/dec64.json")
print(f"\n## decode, 1.5B shape, bf16, greedy, prompt {sys.argv[1]} tokens")
print("| | tokens/s |\n|---|---|")
print(f"| sharptune generate --json, batch 1, 256 new tokens | {b1 if isinstance(b1, str) else f'{b1:.1f}'} |")
print(f"| sharptune generate (streaming to the terminal), batch 1 | {stream[-1] if stream else 'failed'} |")
print(f"| sharptune generate --json, batch 64, 128 new tokens each (aggregate) | {b64 if isinstance(b64, str) else f'{b64:.0f}'} |")
print(f"| transformers generate, batch 1, 256 new tokens | {hf['transformers_tokens_per_s']:.1f} |")
print(f"| weights-bound limit ({hf['weight_bytes']/1e9:.2f} GB at {hf['copy_bandwidth_GBps']:.0f} GB/s measured copy) | {hf['bandwidth_bound_tokens_per_s']:.0f} |")
PY
    ;;
esac
done
