#!/usr/bin/env bash
# Mutation smoke test through the CLI (issue 13's classes, on a tiny model, CPU): every case runs in a fresh
# folder and is classed as crash (rc not 0/1, or killed), hang (over the time limit), messy (a failure that is
# not exactly one "error:" line, or shows a stack trace, or a line over 1000 characters) or leftovers (a failed
# train that left its fresh output folder), else OK.
#   scripts/fuzz/smoke.sh [CLI_DLL] [LIMIT_SECONDS]   (default: src/SharpTune.Cli/bin/Release/net10.0/linux-x64/SharpTune.Cli.dll)
# Prints one line per case to artifacts/fuzz/smoke-cases.tsv and the table by input kind.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cli=${1:-$root/src/SharpTune.Cli/bin/Release/net10.0/linux-x64/SharpTune.Cli.dll}
limit=${2:-150}
work=$(mktemp -d /tmp/sharptune-smoke.XXXXXX)
mkdir -p "$root/artifacts/fuzz"
cases=$root/artifacts/fuzz/smoke-cases.tsv
: > "$cases"
st() { dotnet "$cli" "$@"; }
py() { python3 - "$@"; }

# ---- the base: a tiny model with a tokenizer, a dataset, a finished 2-step run with checkpoints
base=$work/base
st init --tiny "$base/model" > /dev/null || { echo "cannot make the tiny model"; exit 1; }
py "$base/data.jsonl" <<'P'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(16): f.write(json.dumps({"question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n")
P
train_args=(--dataset-rows 16 --max-steps 2 --save-every 1 --batch-size 2 --gradient-accumulation 1 --max-length 256 --lora-rank 4 --validation-fraction 0 --device cpu)
st train --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir "$base/run" > /dev/null 2>&1 || { echo "cannot make the base run"; exit 1; }

n=0
# run KIND NAME EXPECT_OUTPUT_DIR -- command...   (EXPECT_OUTPUT_DIR: a fresh folder that a failed run must not leave; - for none)
run() {
  local kind=$1 name=$2 fresh=$3; shift 4
  n=$((n + 1))
  local out=$work/case$n.out err=$work/case$n.err
  mkdir -p "$work/c$n"
  ( cd "$work/c$n" && timeout "$limit" dotnet "$cli" "$@" > "$out" 2> "$err" ); local rc=$?
  local verdict=ok
  if [[ $rc == 124 || $rc == 137 ]]; then verdict=hang
  elif [[ $rc != 0 && $rc != 1 ]]; then verdict=crash
  elif [[ $rc == 1 ]]; then
    local lines; lines=$(grep -c '' "$err")
    if [[ $lines != 1 ]] || ! head -1 "$err" | grep -q '^error: ' || grep -q '   at ' "$err" || [[ $(wc -L < "$err") -gt 1000 ]]; then verdict=messy
    elif [[ $fresh != - && -e $fresh ]]; then verdict=leftovers
    fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$name" "$rc" "$verdict" "$(head -c 200 "$err" | tr '\n\t' '  ')" >> "$cases"
}
newcase() { mkdir -p "$work/c$((n + 1))"; echo "$work/c$((n + 1))"; }
copy_model() { local d; d=$(newcase); cp -r "$base/model" "$d/m"; echo "$d/m"; }
edit_json() { py "$@" <<'P'
import json, sys
path, code = sys.argv[1], sys.argv[2]
j = json.load(open(path))
exec(code)
open(path, "w").write(json.dumps(j))
P
}
st_header() { py "$@" <<'P'
import json, struct, sys
path, code = sys.argv[1], sys.argv[2]
b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
exec(code)
raw = h if isinstance(h, bytes) else json.dumps(h).encode()
open(path, "wb").write(struct.pack("<Q", len(raw)) + raw + data)
P
}

# ---- model folder (info, generate)
model_case() {  # NAME PYTHON_EDIT_ON_CONFIG | custom via $m
  local name=$1; shift
  run model "$name/info" - -- info --model "$m"
  run model "$name/generate" - -- generate --model "$m" --prompt "Hello" -n 4 --device cpu
}
m=$(copy_model); edit_json "$m/config.json" 'j["intermediate_size"] = 11008.5'; model_case fractional-size
m=$(copy_model); edit_json "$m/config.json" 'j["bos_token_id"] = 4294967296'; model_case token-id-over-int32
m=$(copy_model); edit_json "$m/config.json" 'j["vocab_size"] = -1'; model_case negative-vocab
m=$(copy_model); sed -i 's/"hidden_size": [0-9]*/"hidden_size": NaN/' "$m/config.json"; model_case nan-size
m=$(copy_model); edit_json "$m/config.json" 'j["num_hidden_layers"] = 1e300'; model_case huge-layers
m=$(copy_model); head -c 100 "$base/model/config.json" > "$m/config.json"; model_case truncated-config
m=$(copy_model); : > "$m/config.json"; model_case empty-config
m=$(copy_model); rm "$m/config.json"; mkdir "$m/config.json"; model_case config-is-folder
m=$(copy_model); rm "$m/config.json"; ln -s "$m/config.json" "$m/config.json"; model_case config-symlink-loop
m=$(copy_model); py "$m/config.json" <<'P'
import sys; open(sys.argv[1], "w").write('{"a":' + "[" * 100000 + "]" * 100000 + "}")
P
model_case deep-config
m=$(copy_model); edit_json "$m/config.json" 'j["model_type"] = "x" * 1000000; j.pop("architectures", None)'; model_case megabyte-string
m=$(copy_model); printf '{"architectures": ["\xff\xfe"]}' > "$m/config.json"; model_case invalid-utf8
m=$(copy_model); sed -i 's/^{/{"hidden_size": 8, /' "$m/config.json"; model_case duplicate-key
m=$(copy_model); echo '{"eos_token_id": [1, "a"]}' > "$m/generation_config.json"; model_case generation-eos-text
m=$(copy_model); edit_json "$m/tokenizer.json" 'j["decoder"] = 4294967296'; model_case tokenizer-decoder-number
m=$(copy_model); sed -i 's/^{/{"eos_token": "a", "eos_token": "b", /' "$m/tokenizer_config.json"; model_case tokenizer-config-duplicate
m=$(copy_model); edit_json "$m/tokenizer_config.json" 'j["eos_token"] = "\ud800"'; model_case lone-surrogate-token
m=$(copy_model); edit_json "$m/tokenizer_config.json" 'j["chat_template"] = "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}"'; model_case template-deep-parens
m=$(copy_model); edit_json "$m/tokenizer_config.json" 'j["chat_template"] = "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"'
run model template-recursive-macro/chat - -- generate --model "$m" --prompt Hi -n 4 --chat --device cpu
m=$(copy_model); edit_json "$m/tokenizer_config.json" 'j["chat_template"] = "{{ \"a\" * 1000000000 }}"'
run model template-huge-output/chat - -- generate --model "$m" --prompt Hi -n 4 --chat --device cpu
for i in 1 2 3 4 5; do
  m=$(copy_model); py "$m/model.safetensors" "$i" <<'P'
import random, sys
path = sys.argv[1]; b = bytearray(open(path, "rb").read()); r = random.Random(int(sys.argv[2]))
n = int.from_bytes(b[:8], "little")
for _ in range(4): b[r.randrange(0, 8 + n)] = r.randrange(256)
open(path, "wb").write(bytes(b))
P
  model_case "safetensors-byte-flips-$i"
done
m=$(copy_model); truncate -s 5000 "$m/model.safetensors"; model_case safetensors-truncated
m=$(copy_model); st_header "$m/model.safetensors" 'k=[x for x in h if x!="__metadata__"]; h=json.dumps(h).replace(json.dumps(k[1]), json.dumps(k[0])).encode()'; model_case safetensors-duplicate-name
m=$(copy_model); st_header "$m/model.safetensors" 'k=[x for x in h if x!="__metadata__"][0]; h[k]["shape"]=[4294967296,4294967296]'; model_case safetensors-shape-2-32
m=$(copy_model); st_header "$m/model.safetensors" 'k=[x for x in h if x!="__metadata__"][0]; h[k]["dtype"]="F8_E9"'; model_case safetensors-dtype
m=$(copy_model); st_header "$m/model.safetensors" 'k=[x for x in h if x!="__metadata__"][0]; h=json.dumps(h).replace("\"data_offsets\": [0,", "\"data_offsets\": [0.5,").encode()'; model_case safetensors-fractional-offset
m=$(copy_model); st_header "$m/model.safetensors" 'k=[x for x in h if x!="__metadata__"][0]; h[k]["data_offsets"][1]=99999999999999999999'; model_case safetensors-offset-over-int64
m=$(copy_model); echo '{"weight_map": {"a": "model.safetensors", "a": "model.safetensors"}}' > "$m/model.safetensors.index.json"; model_case shard-index-duplicate
m=$(copy_model); py "$work/long.txt" <<'P'
import random, sys
r = random.Random(1); open(sys.argv[1], "w").write("".join(r.choice("abcdefghij ,.") for _ in range(120000)))
P
run model prompt-beyond-context - -- generate --model "$m" --prompt "$(cat "$work/long.txt")" -n 4 --device cpu

# ---- dataset (train)
data_case() {  # NAME FILE
  local d=$1 f=$2
  run dataset "$d" "$work/c$((n + 1))/out" -- train --model "$base/model" --dataset "$f" "${train_args[@]}" --output-dir out
}
d=$(newcase); head -c 300 "$base/data.jsonl" > "$d/x.jsonl"; data_case truncated-jsonl "$d/x.jsonl"
d=$(newcase); : > "$d/x.jsonl"; data_case empty-jsonl "$d/x.jsonl"
d=$(newcase); mkdir "$d/x.jsonl"; data_case folder-named-jsonl "$d/x.jsonl"
d=$(newcase); ln -s "$d/x.jsonl" "$d/x.jsonl"; data_case symlink-loop "$d/x.jsonl"
d=$(newcase); gzip -c "$base/data.jsonl" > "$d/x.jsonl.gz"; py "$d/x.jsonl.gz" <<'P'
import sys; b = bytearray(open(sys.argv[1], "rb").read())
for i in range(20, len(b) - 10, 5): b[i] ^= 0x55
open(sys.argv[1], "wb").write(bytes(b))
P
data_case corrupt-gz "$d/x.jsonl.gz"
d=$(newcase); cp "$root/tests/SharpTune.Tests/Fixtures/Data/chat.parquet" "$d/x.parquet"; py "$d/x.parquet" <<'P'
import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-8:-4] = (2**31 - 1).to_bytes(4, "little"); open(sys.argv[1], "wb").write(bytes(b))
P
data_case parquet-footer-2-31 "$d/x.parquet"
d=$(newcase); echo '[{"question": "a \ud800 b", "answer": "c"}]' > "$d/x.json"; data_case lone-surrogate "$d/x.json"
d=$(newcase); printf '{"question": "\xff\xfe", "answer": "c"}\n' > "$d/x.jsonl"; data_case invalid-utf8 "$d/x.jsonl"
d=$(newcase); py "$d/x.jsonl" <<'P'
import sys; open(sys.argv[1], "w").write('{"question": ' + "[" * 100000 + "]" * 100000 + ', "answer": "a"}\n')
P
data_case deep-nesting "$d/x.jsonl"
d=$(newcase); py "$d/x.csv" <<'P'
import sys; open(sys.argv[1], "w").write("q" * 800000 + ",answer\nx,y\n")
P
data_case huge-csv-header "$d/x.csv"
d=$(newcase); printf '"ques\ntion",answer\nx,y\n' > "$d/x.csv"; data_case newline-in-column "$d/x.csv"
d=$(newcase); echo '{"question": 5, "answer": ["a"]}' > "$d/x.jsonl"; data_case wrong-types "$d/x.jsonl"
d=$(newcase); echo '{"question": "q", "question": "r", "answer": "a"}' > "$d/x.jsonl"; data_case duplicate-keys "$d/x.jsonl"

# ---- recipe (train --recipe)
recipe_case() {  # NAME TEXT_FILE
  run recipe "$1" "$work/c$((n + 1))/out" -- train --recipe "$2" --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir out
}
d=$(newcase); py "$d/r.yaml" <<'P'
import sys; open(sys.argv[1], "w").write("learning_rate: " + "[" * 100000 + "]" * 100000 + "\n")
P
recipe_case deep-flow "$d/r.yaml"
d=$(newcase); py "$d/r.yaml" <<'P'
import sys; open(sys.argv[1], "w").write("".join(" " * i + "a:\n" for i in range(3000)))
P
recipe_case deep-block "$d/r.yaml"
for v in .nan 1e999 .inf -5 1.5 0x10 "'x'"; do d=$(newcase); echo "learning_rate: $v" > "$d/r.yaml"; recipe_case "learning-rate-$v" "$d/r.yaml"; done
d=$(newcase); printf 'lora_alpha: .inf\n' > "$d/r.yaml"; recipe_case lora-alpha-inf "$d/r.yaml"
d=$(newcase); printf 'max_steps: 3\nmax_steps: 4\n' > "$d/r.yaml"; recipe_case duplicate-key "$d/r.yaml"
d=$(newcase); printf 'max_steps: [3\n' > "$d/r.yaml"; recipe_case invalid-yaml "$d/r.yaml"
d=$(newcase); py "$d/r.yaml" <<'P'
import sys; open(sys.argv[1], "w").write("k" * 1000000 + ": 1\n")
P
recipe_case megabyte-key "$d/r.yaml"
d=$(newcase); printf '\xff\xfe: 1\n' > "$d/r.yaml"; recipe_case invalid-utf8 "$d/r.yaml"

# ---- adapter (generate --adapter)
adapter_case() {
  run adapter "$1" - -- generate --model "$base/model" --adapter "$a" --prompt Hello -n 4 --device cpu
}
copy_adapter() { local d; d=$(newcase); cp -r "$base/run/adapter" "$d/a"; echo "$d/a"; }
a=$(copy_adapter); edit_json "$a/adapter_config.json" 'j["bias"] = 0'; adapter_case bias-number
a=$(copy_adapter); edit_json "$a/adapter_config.json" 'j["target_modules"] = [None]'; adapter_case target-null
a=$(copy_adapter); edit_json "$a/adapter_config.json" 'j["r"] = 1.5'; adapter_case fractional-rank
a=$(copy_adapter); edit_json "$a/adapter_config.json" 'j["lora_alpha"] = "x"'; adapter_case alpha-text
a=$(copy_adapter); st_header "$a/adapter_model.safetensors" 'k=[x for x in h if x!="__metadata__"][0]; h[k]["shape"]=[4294967296,4294967296]'; adapter_case shape-2-32
a=$(copy_adapter); truncate -s 300 "$a/adapter_model.safetensors"; adapter_case truncated-weights
a=$(copy_adapter); rm "$a/adapter_config.json"; adapter_case missing-config
a=$(copy_adapter); sed -i 's/^{/{"r": 4, /' "$a/adapter_config.json"; adapter_case duplicate-key

# ---- checkpoint (resume)
resume_case() {  # NAME PYTHON_EDIT (on $state or files under $ck)
  run checkpoint "$1" - -- train --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir "$o"
}
copy_run() { local d; d=$(newcase); cp -r "$base/run" "$d/run"; echo "$d/run"; }
newest() { ls -d "$1"/checkpoints/step-* | sort | tail -1; }
o=$(copy_run); edit_json "$(newest "$o")/trainer_state.json" 'j["step"] = []'; resume_case step-list
o=$(copy_run); edit_json "$(newest "$o")/trainer_state.json" 'j["optimizer_steps"] = None'; resume_case optimizer-steps-null
o=$(copy_run); edit_json "$(newest "$o")/trainer_state.json" 'j["tokens"] = 1.5'; resume_case tokens-fractional
o=$(copy_run); st_header "$(newest "$o")/optimizer.safetensors" 'h["m.0"]["shape"]=list(reversed(h["m.0"]["shape"])) if len(h["m.0"]["shape"])>1 else h["m.0"]["shape"]+[1]'; resume_case optimizer-wrong-shape
o=$(copy_run); st_header "$(newest "$o")/adapter_model.safetensors" 'k=[x for x in h if x!="__metadata__"][0]; h[k]["shape"]=[4294967296,4294967296]'; resume_case adapter-shape-2-32
o=$(copy_run); sed -i '2s/.*/{"event": "step", "step": [/' "$o/metrics.jsonl"; resume_case corrupt-metrics
o=$(copy_run); truncate -s 50 "$(newest "$o")/trainer_state.json"; resume_case truncated-state

# ---- flags
flag_case() {
  local name=$1; shift
  run flags "$name" "$work/c$((n + 1))/out" -- "$@"
}
for f in "--learning-rate 1e999" "--adam-epsilon Infinity" "--weight-decay NaN" "--lora-alpha inf" "--lora-dropout 1" "--loss-chunk 999999999" "--keep-checkpoints 0"; do
  newcase > /dev/null; flag_case "train ${f}" train --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir out $f
done
d=$(newcase); touch "$d/out"; run flags "train --output-dir FILE" - -- train --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir out
for f in "--temperature NaN" "--top-p 2" "--max-new-tokens -1" "--repetition-penalty inf"; do
  newcase > /dev/null; flag_case "generate ${f}" generate --model "$base/model" --prompt Hi --device cpu $f
done

rm -rf "$work"
# ---- the table
awk -F'\t' '
  { k[$1] = 1; c[$1]++; v[$1 "," $4]++; t[$4]++; n++ }
  END {
    printf "| input | crash | hang | messy | leftovers | OK | cases |\n|---|---|---|---|---|---|---|\n";
    split("model dataset recipe adapter checkpoint flags", order, " ");
    for (i = 1; i <= 6; i++) { x = order[i]; if (!(x in k)) continue;
      printf "| %s | %d | %d | %d | %d | %d | %d |\n", x, v[x ",crash"], v[x ",hang"], v[x ",messy"], v[x ",leftovers"], v[x ",ok"], c[x] }
    printf "| all | %d | %d | %d | %d | %d | %d |\n", t["crash"], t["hang"], t["messy"], t["leftovers"], t["ok"], n
  }' "$cases"
