#!/usr/bin/env bash
# On the GPU machine: `sharptune serve` under load (64 concurrent streaming clients, 256-token answers, R1-Distill-
# Qwen-1.5B shape, random bf16 weights made by transformers, the real Qwen tokenizer) beside single-stream
# transformers `generate`, in one call. Prints one table. About 2-3 minutes.
#   here:  scripts/device/pack.sh src/SharpTune.Cli && ./scripts/fetch-test-data.sh
#   there (carry ["artifacts/device", ".cache/tokenizers"]):  scripts/device/bench-serve.sh
# APP_TAR, TOKENIZERS, CLIENTS (64), REQUESTS per client (2), TOKENS (256), KV_TOKENS (40000) override.
set -u
here=$(cd "$(dirname "$0")/../bench" && pwd)
APP_TAR=${APP_TAR:-artifacts/device/SharpTune.Cli.tar.xz}
TOKENIZERS=${TOKENIZERS:-.cache/tokenizers}
CLIENTS=${CLIENTS:-64} REQUESTS=${REQUESTS:-2} TOKENS=${TOKENS:-256} KV_TOKENS=${KV_TOKENS:-40000}
app=/tmp/app-serve/SharpTune.Cli model=/tmp/models/qwen1.5b-serve port=8123 runs=/tmp/runs/serve
mkdir -p /tmp/app-serve /tmp/models "$runs"
tar -xJf "$APP_TAR" -C /tmp/app-serve   # its own folder: /tmp/app may hold another build
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
[[ -s $model/config.json ]] || python3 "$here/serve_load.py" make-model --tokenizer "$TOKENIZERS/qwen3" --out "$model"

"$app" serve --model "$model" --device cuda --port $port --kv-tokens "$KV_TOKENS" --max-batch "$CLIENTS" > "$runs/server.log" 2>&1 &
server=$!
for _ in $(seq 240); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=2)" 2>/dev/null && break
    kill -0 $server 2>/dev/null || { echo "the server exited:"; tail -20 "$runs/server.log"; exit 1; }
    sleep 0.5
done
used() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }
idle=$(used)
( peak=0; while kill -0 $server 2>/dev/null; do m=$(used); (( m > peak )) && peak=$m && echo $peak > "$runs/peak"; sleep 0.3; done ) &
sampler=$!
python3 "$here/serve_load.py" load --port $port --clients "$CLIENTS" --requests "$REQUESTS" --tokens "$TOKENS" --model qwen1.5b-serve > "$runs/load.json" 2> "$runs/load.err"
kill $server; wait $server 2>/dev/null; kill $sampler 2>/dev/null
python3 "$here/serve_load.py" hf --model "$model" --tokens "$TOKENS" > "$runs/hf.json" 2> "$runs/hf.err"

python3 - "$runs" "$idle" <<'PY'
import json, sys
runs, idle = sys.argv[1], sys.argv[2]
def read(name):
    try: return json.load(open(f"{runs}/{name}.json"))
    except Exception: return None
load, hf = read("load"), read("hf")
if load is None:
    print("load test failed:\n" + open(f"{runs}/load.err").read()[-1500:] + "\nserver log:\n" + open(f"{runs}/server.log").read()[-1500:]); sys.exit(1)
peak = open(f"{runs}/peak").read().strip() if __import__("os").path.exists(f"{runs}/peak") else "?"
print(f"\n## sharptune serve, R1-Distill-Qwen-1.5B shape, bf16, {load['clients']} concurrent streaming clients, {load['requests']} requests, greedy, "
      f"{load['completion_tokens'] // load['requests']} tokens each")
print("| | value |\n|---|---|")
print(f"| aggregate throughput | **{load['aggregate_tokens_per_s']:.0f} tokens/s** ({load['completion_tokens']} tokens in {load['wall_s']:.1f} s) |")
print(f"| time to first token p50 / p99 | {load['ttft_p50_ms']:.0f} / {load['ttft_p99_ms']:.0f} ms |")
print(f"| inter-token latency p50 / p99 | {load['itl_p50_ms']:.1f} / {load['itl_p99_ms']:.1f} ms |")
print(f"| GPU memory, device-wide peak (nvidia-smi; before the server: {idle} MiB) | {peak} MiB |")
one = load.get("single_stream_tokens_per_s")
print(f"| sharptune serve, one stream alone | " + (f"{one:.1f} tokens/s (TTFT {load['single_stream_ttft_ms']:.0f} ms) |" if one else "no tokens |"))
if hf:
    print(f"| transformers generate, one stream (prompt {hf['prompt_tokens']} tokens) | {hf['transformers_tokens_per_s']:.1f} tokens/s |")
    print(f"| aggregate / transformers single stream | **{load['aggregate_tokens_per_s'] / hf['transformers_tokens_per_s']:.1f}x** |")
else:
    print("| transformers generate | failed: " + open(f"{runs}/hf.err").read()[-300:].replace("\n", " ") + " |")
PY
