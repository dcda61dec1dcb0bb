#!/usr/bin/env bash
# Mutation smoke test through the CLI (issue 13's classes, on a tiny model, CPU): every case runs in a fresh
# folder and is classed as crash (rc not 0/1, or killed), hang (over the time limit), messy (a failure that is
# not exactly one "error:" line, or shows a stack trace, or a line over 1000 characters) or leftovers (a failed
# train that left its fresh output folder), else OK.
#   scripts/fuzz/smoke.sh [CLI_DLL] [LIMIT_SECONDS]   (default: src/SharpTune.Cli/bin/Release/net10.0/linux-x64/SharpTune.Cli.dll)
#   SMOKE_SEED=N picks the random mutations (byte flips of every kind of input); default: a new seed each run.
#   SMOKE_ONLY="KIND ..." runs only those input kinds (model tokenize dataset recipe adapter checkpoint flags
#   quantization score eval export chat serve).
# Prints one line per case to artifacts/fuzz/smoke-cases.tsv (or $SMOKE_CASES) and the table by input kind.
# A hung case gets SIGTERM at the limit and SIGKILL 10 s later (the CLI's first SIGTERM only asks for a graceful stop).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cli=${1:-$root/src/SharpTune.Cli/bin/Release/net10.0/linux-x64/SharpTune.Cli.dll}
limit=${2:-150}
work=$(mktemp -d /tmp/sharptune-smoke.XXXXXX)
mkdir -p "$root/artifacts/fuzz"
cases=${SMOKE_CASES:-$root/artifacts/fuzz/smoke-cases.tsv}
: > "$cases"
seed=${SMOKE_SEED:-$((RANDOM * 32768 + RANDOM))}
echo "seed $seed"
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
  if [[ -n ${SMOKE_ONLY:-} && " $SMOKE_ONLY " != *" $kind "* ]]; then return; fi   # SMOKE_ONLY="score eval": those kinds only
  local out=$work/case$n.out err=$work/case$n.err
  mkdir -p "$work/c$n"
  ( cd "$work/c$n" && timeout -k 10 "${case_limit:-$limit}" dotnet "$cli" "$@" < "${stdin:-/dev/null}" > "$out" 2> "$err" ); local rc=$?
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
  m=$(copy_model); py "$m/model.safetensors" "$((seed + i))" <<'P'
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

# ---- seeded random mutations of every kind of input (new each run unless SMOKE_SEED is set)
flip() {  # FILE SEED [COUNT] [HEADER_ONLY]: random byte changes, truncation or insertion
  py "$@" <<'P'
import random, sys
path, r = sys.argv[1], random.Random(int(sys.argv[2])); count = int(sys.argv[3]) if len(sys.argv) > 3 else 4
b = bytearray(open(path, "rb").read())
end = 8 + int.from_bytes(b[:8], "little") if len(sys.argv) > 4 and len(b) > 8 else len(b)
end = max(1, min(end, len(b)))
for _ in range(count):
    op, p = r.randrange(6), r.randrange(max(1, min(end, len(b))))
    if op == 0: b[p] ^= 1 << r.randrange(8)
    elif op == 1: b[p] = r.choice([0, 0x7f, 0x80, 0xff, ord('"'), ord('{'), ord('['), ord('-'), ord('9')])
    elif op == 2: b[p:p] = r.choice([b"\xff\xfe", b"\\ud800", b"-1", b"1e999", b"NaN", b"[" * 50, b'"a":1,'])
    elif op == 3: del b[p:p + r.randrange(1, 16)]
    elif op == 4: b[p] = r.randrange(256)
    else: b = b[:max(1, p)] if r.random() < 0.3 else b
open(path, "wb").write(bytes(b))
P
}
for i in 1 2 3; do m=$(copy_model); flip "$m/config.json" "$((seed + 100 + i))"; run model "random-config-$i/info" - -- info --model "$m"; done
for i in 1 2 3; do m=$(copy_model); flip "$m/tokenizer_config.json" "$((seed + 110 + i))"; run model "random-tokenizer-config-$i/generate" - -- generate --model "$m" --prompt Hi -n 2 --chat --device cpu; done

# ---- tokenize
for i in 1 2 3 4; do m=$(copy_model); flip "$m/tokenizer.json" "$((seed + 120 + i))" 6; run tokenize "random-tokenizer-$i" - -- tokenize --model "$m" --text "Hello wörld 123"; done
run tokenize empty-text - -- tokenize --model "$base/model" --text ""
run tokenize invalid-utf8-text - -- tokenize --model "$base/model" --text $'\xff\xfe\xed\xa0\x80'
run tokenize long-text - -- tokenize --model "$base/model" --text "$(head -c 100000 "$work/long.txt")" --json
m=$(copy_model); rm "$m/tokenizer.json"; run tokenize missing-tokenizer - -- tokenize --model "$m" --text Hi
m=$(copy_model); edit_json "$m/tokenizer.json" 'j["model"]["vocab"] = []'; run tokenize vocab-wrong-type - -- tokenize --model "$m" --text Hi
m=$(copy_model); edit_json "$m/tokenizer.json" 'j["added_tokens"] = [{"id": -5, "content": "x"}]'; run tokenize added-token-negative-id - -- tokenize --model "$m" --text Hi
run tokenize no-model - -- tokenize --model /nonexistent/model --text Hi

# ---- more datasets: each format, seeded flips, wrong shapes
for i in 1 2 3; do d=$(newcase); cp "$base/data.jsonl" "$d/x.jsonl"; flip "$d/x.jsonl" "$((seed + 200 + i))" 6; data_case "random-jsonl-$i" "$d/x.jsonl"; done
for i in 1 2 3 4; do d=$(newcase); cp "$root/tests/SharpTune.Tests/Fixtures/Data/chat.parquet" "$d/x.parquet"; flip "$d/x.parquet" "$((seed + 210 + i))" 3; data_case "random-parquet-$i" "$d/x.parquet"; done
d=$(newcase); cp "$root/fuzz/regressions/parquet/footer-list-count-hang.parquet" "$d/x.parquet"; data_case parquet-footer-list-count "$d/x.parquet"
d=$(newcase); head -c 700 "$root/tests/SharpTune.Tests/Fixtures/Data/chat.parquet" > "$d/x.parquet"; data_case truncated-parquet "$d/x.parquet"
py "$base/data.jsonl" "$base/data.csv" <<'P'
import csv, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
w = csv.writer(open(sys.argv[2], "w", newline="")); w.writerow(["question", "answer"]); [w.writerow([r["question"], r["answer"]]) for r in rows]
P
for i in 1 2; do c=$(newcase); cp "$base/data.csv" "$c/x.csv"; flip "$c/x.csv" "$((seed + 220 + i))" 6; data_case "random-csv-$i" "$c/x.csv"; done
d=$(newcase); printf 'question\tanswer\nq\ta\textra\tmore\nonly\n' > "$d/x.tsv"; data_case ragged-tsv "$d/x.tsv"
d=$(newcase); printf 'question,answer\n' > "$d/x.csv"; data_case header-only-csv "$d/x.csv"
d=$(newcase); printf 'foo,bar\n1,2\n' > "$d/x.csv"; data_case unknown-columns-csv "$d/x.csv"
d=$(newcase); echo 5 > "$d/x.json"; data_case json-number "$d/x.json"
d=$(newcase); echo '{"question": "q", "answer": "a"}' > "$d/x.json"; data_case json-object-not-array "$d/x.json"
d=$(newcase); py "$base/data.jsonl" "$d/x.json" <<'P'
import json, sys; open(sys.argv[2], "w").write(json.dumps([json.loads(l) for l in open(sys.argv[1])]))
P
flip "$d/x.json" "$((seed + 230))" 5; data_case random-json-array "$d/x.json"
d=$(newcase); : > "$d/x.jsonl.gz"; data_case empty-gz "$d/x.jsonl.gz"
d=$(newcase); cp "$base/data.jsonl" "$d/x.jsonl.gz"; data_case not-gzip "$d/x.jsonl.gz"
d=$(newcase); gzip -c "$base/data.jsonl" > "$d/x.jsonl.gz"; flip "$d/x.jsonl.gz" "$((seed + 240))" 3; data_case random-gz "$d/x.jsonl.gz"
d=$(newcase); mkdir "$d/empty"; data_case empty-folder "$d/empty"
d=$(newcase); data_case missing-file "$d/nope.jsonl"
d=$(newcase); py "$d/x.jsonl" <<'P'
import sys; open(sys.argv[1], "w").write('{"question": "' + "q" * 1000000 + '", "answer": "a"}\n' * 2)
P
data_case megabyte-row "$d/x.jsonl"

# ---- more recipes: seeded flips of the shipped recipes, wrong types, the newer settings
for i in 1 2 3 4; do d=$(newcase); cp "$root/recipes/r1-distill-llama-8b-medical-qlora.yaml" "$d/r.yaml"; flip "$d/r.yaml" "$((seed + 300 + i))" 3
  sed -i -e 's/^quantization:.*//' -e 's/^optimizer:.*//' -e 's/^model:.*//' -e '/^datasets:/,/rows:/d' "$d/r.yaml"; recipe_case "random-recipe-$i" "$d/r.yaml"; done
for v in 'lora_rank: "x"' 'target_modules: 5' 'target_modules: [q_proj, 5]' 'unknown_key: 1' 'max_steps: 1e20' 'batch_size: 0.5' 'learning_rate: [1]' 'peft: adapters' 'peft: prompt_tuning' 'use_dora: true' 'use_dora: "yes"' 'optimizer: adamw_8bit' 'optimizer: sgd' 'quantization: nf4' 'quantization: q2' 'lr_scheduler: bogus' 'warmup_steps: -3' 'max_length: 99999999999'; do
  d=$(newcase); echo "$v" > "$d/r.yaml"; recipe_case "${v//[: \"\[\],]/_}" "$d/r.yaml"; done
d=$(newcase); printf 'peft: prompt_tuning\nuse_dora: true\n' > "$d/r.yaml"; recipe_case prompt-tuning-with-dora "$d/r.yaml"
d=$(newcase); py "$d/r.yaml" <<'P'
import sys
lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"] + [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]" for i in range(1, 9)]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
P
recipe_case billion-laughs "$d/r.yaml"
d=$(newcase); : > "$d/r.yaml"; recipe_case empty-recipe "$d/r.yaml"
d=$(newcase); mkdir "$d/r.yaml"; recipe_case recipe-is-folder "$d/r.yaml"

# ---- more adapters and checkpoints: seeded flips
for i in 1 2 3; do a=$(copy_adapter); flip "$a/adapter_model.safetensors" "$((seed + 400 + i))" 4 header; adapter_case "random-adapter-weights-$i"; done
for i in 1 2; do a=$(copy_adapter); flip "$a/adapter_config.json" "$((seed + 410 + i))" 4; adapter_case "random-adapter-config-$i"; done
for i in 1 2; do o=$(copy_run); flip "$(newest "$o")/optimizer.safetensors" "$((seed + 420 + i))" 4 header; resume_case "random-optimizer-$i"; done
for i in 1 2; do o=$(copy_run); flip "$(newest "$o")/trainer_state.json" "$((seed + 430 + i))" 4; resume_case "random-trainer-state-$i"; done

# ---- more flags: huge, negative, fractional, NaN, unparsable, for train and generate
without() {  # FLAG ARGS...: ARGS without FLAG and its value, one per line
  local skip=$1; shift
  while (($#)); do if [[ $1 == "$skip" || ($skip == --max-new-tokens && $1 == -n) ]]; then shift 2; else printf '%s\n' "$1"; shift; fi; done
}
for f in "--max-steps -1" "--max-steps 0.5" "--batch-size 0" "--batch-size -3" "--lora-rank 0" "--lora-rank 1.5" "--max-length 0" "--max-length 99999999999" \
         "--gradient-accumulation 0" "--validation-fraction 1.5" "--validation-fraction NaN" "--save-every -1" "--dataset-rows -1" "--warmup-steps -1" \
         "--quantization bogus" "--lr-scheduler bogus" "--seed NaN" "--device bogus" "--dtype int3" "--unknown-flag 1"; do
  mapfile -t own < <(without "${f%% *}" "${train_args[@]}")   # the flag alone, not beside the base value
  newcase > /dev/null; flag_case "train ${f}" train --model "$base/model" --dataset "$base/data.jsonl" "${own[@]}" --output-dir out $f
done
for f in "--top-k ''" "--top-p 0x10" "--seed NaN" "--min-p -1" "--top-k -5" "--max-new-tokens 99999999999" "--temperature -1" "--stop ''" "--device cuda:99" "--dtype bogus"; do
  mapfile -t own < <(without "${f%% *}" -n 4 --device cpu)
  newcase > /dev/null; eval "flag_case \"generate \${f}\" generate --model \"\$base/model\" --prompt Hi \"\${own[@]}\" $f"
done

# ---- quantization: the 4/8-bit flags, and a bitsandbytes 4-bit checkpoint, whole or with a tensor missing
for q in nf4 fp4 int8; do run quantization "generate --quantization $q" - -- generate --model "$base/model" --prompt Hi -n 2 --device cpu --quantization $q; done
run quantization "generate --quantization q2" - -- generate --model "$base/model" --prompt Hi -n 2 --device cpu --quantization q2
newcase > /dev/null; run quantization "train --quantization nf4 --optimizer adamw_8bit" "$work/c$((n + 1))/out" -- train --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir out --quantization nf4 --optimizer adamw_8bit
newcase > /dev/null; run quantization "train --use-dora" "$work/c$((n + 1))/out" -- train --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir out --use-dora true
newcase > /dev/null; run quantization "train --peft prompt_tuning" "$work/c$((n + 1))/out" -- train --model "$base/model" --dataset "$base/data.jsonl" "${train_args[@]}" --output-dir out --peft prompt_tuning
bnb_model() {  # DROP_SUFFIX or -: the tiny model with its projections stored as bitsandbytes NF4
  local d; d=$(newcase); cp -r "$base/model" "$d/bnb"
  py "$d/bnb" "$1" <<'P'
import json, struct, sys
folder, drop = sys.argv[1], sys.argv[2]
path = folder + "/model.safetensors"; b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n]); data = b[8 + n:]
out, blobs, off, dropped = {}, [], 0, []
def add(name, dtype, shape, raw):
    global off
    if drop != "-" and not dropped and name.endswith(drop): dropped.append(name); return   # left out, data and all
    out[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}; blobs.append(raw); off += len(raw)
for name, e in h.items():
    if name == "__metadata__": continue
    raw = data[e["data_offsets"][0]:e["data_offsets"][1]]
    proj = any(name.endswith(p + ".weight") for p in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))
    if not proj or len(e["shape"]) != 2: add(name, e["dtype"], e["shape"], raw); continue
    o, i = e["shape"]; count = o * i; blocks = count // 64; nested = (blocks + 255) // 256
    add(name, "U8", [count // 2, 1], bytes((k * 7) % 256 for k in range(count // 2)))
    add(name + ".absmax", "U8", [blocks], bytes((k * 37 + 11) % 256 for k in range(blocks)))
    add(name + ".quant_map", "F32", [16], struct.pack("<16f", *[-1 + 2 * k / 15 for k in range(16)]))
    add(name + ".nested_absmax", "F32", [nested], struct.pack(f"<{nested}f", *[0.01] * nested))
    add(name + ".nested_quant_map", "F32", [256], struct.pack("<256f", *[-1 + 2 * k / 255 for k in range(256)]))
    state = {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [o, i], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.02}
    raw_state = json.dumps(state).encode()
    add(name + ".quant_state.bitsandbytes__nf4", "U8", [len(raw_state)], raw_state)
header = json.dumps(out).encode()
open(path, "wb").write(struct.pack("<Q", len(header)) + header + b"".join(blobs))
c = json.load(open(folder + "/config.json"))
c["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True, "load_in_8bit": False, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16"}
json.dump(c, open(folder + "/config.json", "w"))
P
  echo "$d/bnb"
}
m=$(bnb_model -); run quantization bnb-4bit-whole - -- generate --model "$m" --prompt Hi -n 2 --device cpu
m=$(bnb_model -); run quantization bnb-4bit-as-int8 - -- generate --model "$m" --prompt Hi -n 2 --device cpu --quantization int8
for drop in quant_state.bitsandbytes__nf4 .absmax .nested_absmax .quant_map; do m=$(bnb_model "$drop"); run quantization "bnb-4bit-missing-$drop" - -- generate --model "$m" --prompt Hi -n 2 --device cpu; done
m=$(bnb_model -); st_header "$m/model.safetensors" 'k=[x for x in h if x.endswith(".absmax")][0]; h[k]["shape"]=[3]; e=h[k]["data_offsets"]; pass' 2>/dev/null; run quantization bnb-4bit-absmax-shape - -- info --model "$m"

# ---- score
p=$(newcase); py "$p" <<'P'
import json, sys
d = sys.argv[1]
with open(d + "/p.jsonl", "w") as f: [f.write(json.dumps({"text": f"the answer is {i}"}) + "\n") for i in range(5)]
with open(d + "/r.jsonl", "w") as f: [f.write(json.dumps({"text": f"answer {i}"}) + "\n") for i in range(5)]
P
score_case() { local name=$1; shift; run score "$name" - -- score "$@"; }
score_case valid --predictions "$p/p.jsonl" --references "$p/r.jsonl"
for i in 1 2 3 4; do d=$(newcase); cp "$p/p.jsonl" "$d/p.jsonl"; flip "$d/p.jsonl" "$((seed + 500 + i))" 5; score_case "random-predictions-$i" --predictions "$d/p.jsonl" --references "$p/r.jsonl"; done
d=$(newcase); head -3 "$p/r.jsonl" > "$d/r.jsonl"; score_case fewer-references --predictions "$p/p.jsonl" --references "$d/r.jsonl"
d=$(newcase); : > "$d/p.jsonl"; score_case empty-predictions --predictions "$d/p.jsonl" --references "$p/r.jsonl"
d=$(newcase); echo '{"text": 5}' > "$d/p.jsonl"; score_case text-number --predictions "$d/p.jsonl" --references "$d/p.jsonl"
d=$(newcase); echo '{"text": "a", "text": "b"}' > "$d/p.jsonl"; score_case duplicate-key --predictions "$d/p.jsonl" --references "$d/p.jsonl"
d=$(newcase); printf '{"text": "\xff\xfe"}\n' > "$d/p.jsonl"; score_case invalid-utf8 --predictions "$d/p.jsonl" --references "$d/p.jsonl"
d=$(newcase); echo '{"text": "a \ud800"}' > "$d/p.jsonl"; score_case lone-surrogate --predictions "$d/p.jsonl" --references "$d/p.jsonl"
d=$(newcase); py "$d/p.jsonl" <<'P'
import sys; open(sys.argv[1], "w").write('{"text": ' + "[" * 100000 + "]" * 100000 + '}\n')
P
score_case deep-nesting --predictions "$d/p.jsonl" --references "$p/r.jsonl"
d=$(newcase); py "$d/p.jsonl" <<'P'
import sys; open(sys.argv[1], "w").write(('{"text": "' + "word " * 200000 + '"}\n'))
P
score_case megabyte-text --predictions "$d/p.jsonl" --references "$d/p.jsonl"
d=$(newcase); mkdir "$d/p.jsonl"; score_case folder --predictions "$d/p.jsonl" --references "$p/r.jsonl"
d=$(newcase); ln -s "$d/p.jsonl" "$d/p.jsonl"; score_case symlink-loop --predictions "$d/p.jsonl" --references "$p/r.jsonl"
score_case missing-file --predictions /nonexistent.jsonl --references "$p/r.jsonl"
score_case metric-bogus --predictions "$p/p.jsonl" --references "$p/r.jsonl" --metrics bogus
score_case bleu-tokenizer-bogus --predictions "$p/p.jsonl" --references "$p/r.jsonl" --bleu-tokenizer bogus
score_case on-bad-row --predictions "$p/p.jsonl" --references "$p/r.jsonl" --on-bad-row skip

# ---- eval (failed runs must not leave the report folder)
eval_case() {  # NAME ARGS...: --max-new-tokens 2 unless ARGS set it
  local name=$1; shift; local short=(--max-new-tokens 2); [[ " $* " == *" --max-new-tokens "* ]] && short=()
  newcase > /dev/null; run eval "$name" "$work/c$((n + 1))/sharptune-eval" -- eval --model "$base/model" --device cpu "${short[@]}" "$@"; }
eval_case valid --data "$base/data.jsonl" --limit 2
for i in 1 2 3; do d=$(newcase); cp "$base/data.jsonl" "$d/x.jsonl"; flip "$d/x.jsonl" "$((seed + 600 + i))" 6; eval_case "random-data-$i" --data "$d/x.jsonl" --limit 4; done
d=$(newcase); : > "$d/x.jsonl"; eval_case empty-data --data "$d/x.jsonl"
d=$(newcase); echo '{"foo": 1}' > "$d/x.jsonl"; eval_case unknown-columns --data "$d/x.jsonl"
for f in "--limit -1" "--max-new-tokens -5" "--token-budget 0" "--batch-size 0" "--shots -1" "--task bogus" "--mode bogus" "--samples -1" "--metrics bogus" "--max-new-tokens 1e9"; do
  mapfile -t own < <(without "${f%% *}" --limit 2)
  eval "eval_case \"\${f}\" --data \"\$base/data.jsonl\" \"\${own[@]}\" $f"; done
d=$(newcase); touch "$d/out"; run eval "output is a file" - -- eval --model "$base/model" --device cpu --max-new-tokens 2 --data "$base/data.jsonl" --limit 2 -o "$d/out"
a=$(copy_adapter); edit_json "$a/adapter_config.json" 'j["r"] = -4'; eval_case adapter-negative-rank --data "$base/data.jsonl" --limit 2 --adapter "$a"
d=$(newcase); echo '{"question": "q", "choices": "abc", "answer": 7}' > "$d/x.jsonl"; eval_case choice-wrong-types --data "$d/x.jsonl" --task choice

# ---- export (a failed export must not leave its output)
export_case() { local name=$1 out=$2; shift 2; run export "$name" "$out" -- export --model "$base/model" --out "$out" "$@"; }
export_case "hf" "$(newcase)/o" --format hf --adapter "$base/run/adapter"
export_case "format bogus" "$(newcase)/o" --format bogus
export_case "quant bogus" "$(newcase)/o.gguf" --format gguf --quant bogus --no-verify
export_case "gguf-lora without adapter" "$(newcase)/o.gguf" --format gguf-lora --no-verify
a=$(copy_adapter); truncate -s 300 "$a/adapter_model.safetensors"; export_case "hf, truncated adapter" "$(newcase)/o" --format hf --adapter "$a"
a=$(copy_adapter); flip "$a/adapter_model.safetensors" "$((seed + 700))" 4 header; export_case "gguf, random adapter" "$(newcase)/o.gguf" --format gguf --adapter "$a" --no-verify
m=$(copy_model); flip "$m/model.safetensors" "$((seed + 710))" 4 header; run export "ollama, random model" "$(dirname "$m")/o" -- export --model "$m" --format ollama --out "$(dirname "$m")/o" --no-verify
d=$(newcase); touch "$d/o"; run export "out exists" - -- export --model "$base/model" --format hf --out "$d/o"
d=$(newcase); touch "$d/f"; run export "out under a file" - -- export --model "$base/model" --format hf --out "$d/f/o"

# ---- chat with stdin
chat_case() { local name=$1 input=$2; shift 2; stdin=$input run chat "$name" - -- chat --model "$base/model" --device cpu -n 4 "$@"; }
d=$(newcase); printf 'Hello\n/quit\n' > "$d/in"; chat_case two-lines "$d/in"
d=$(newcase); : > "$d/in"; chat_case empty-stdin "$d/in"
d=$(newcase); printf '\xff\xfe\xed\xa0\x80\n' > "$d/in"; chat_case invalid-utf8 "$d/in"
d=$(newcase); head -c 120000 "$work/long.txt" > "$d/in"; echo >> "$d/in"; chat_case beyond-context "$d/in"
d=$(newcase); printf 'Hi\n' > "$d/in"; chat_case "--top-p NaN" "$d/in" --top-p NaN
d=$(newcase); printf 'Hi\n' > "$d/in"; m=$(copy_model); edit_json "$m/tokenizer_config.json" 'j["chat_template"] = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"'
stdin=$d/in run chat nested-loop-template - -- chat --model "$m" --device cpu -n 4

# ---- serve: bad flags must be refused before it listens (a server that starts anyway counts as a hang)
serve_case() { local name=$1; shift; case_limit=90 run serve "$name" - -- serve --model "$base/model" --device cpu "$@"; }
for f in "--port -1" "--port 99999" "--port abc" "--kv-tokens 0" "--kv-tokens -5" "--max-batch 0" "--max-queue -1" "--max-model-len 0" "--max-model-len 99999999" "--max-body-bytes -5" "--host not..a..host" "--adapter =" "--adapter x=/nonexistent" "--served-model-name ''"; do
  eval "serve_case \"\${f}\" $f"; done

rm -rf "$work"
# ---- the table
awk -F'\t' '
  { k[$1] = 1; c[$1]++; v[$1 "," $4]++; t[$4]++; n++ }
  END {
    printf "| input | crash | hang | messy | leftovers | OK | cases |\n|---|---|---|---|---|---|---|\n";
    split("model tokenize dataset recipe adapter checkpoint flags quantization score eval export chat serve", order, " ");
    for (i = 1; i <= 13; i++) { x = order[i]; if (!(x in k)) continue;
      printf "| %s | %d | %d | %d | %d | %d | %d |\n", x, v[x ",crash"], v[x ",hang"], v[x ",messy"], v[x ",leftovers"], v[x ",ok"], c[x] }
    printf "| all | %d | %d | %d | %d | %d | %d |\n", t["crash"], t["hang"], t["messy"], t["leftovers"], t["ok"], n
  }' "$cases"
