#!/usr/bin/env bash
# Coverage-guided fuzzing of one SharpTune parser with SharpFuzz + AFL++ (see docs/reliability.md).
#   scripts/fuzz/run.sh TARGET [SECONDS]     TARGET: safetensors json jinja csv jsonl parquet yaml
# Needs: apt-get install afl++; dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0
# Findings land in artifacts/fuzz/TARGET/findings/default/{crashes,hangs}; a summary line goes to
# artifacts/fuzz/summary.tsv (target, seconds, execs, paths, crashes, hangs).
set -euo pipefail
target=${1:?target}
seconds=${2:-600}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/artifacts/fuzz/${FUZZ_RUN:-$target}
bin=${FUZZ_BIN:-$root/artifacts/fuzz/bin}   # another folder lets a rebuilt harness run beside a running one
export PATH="$PATH:$HOME/.dotnet/tools"

if [[ ! -f $bin/.instrumented ]]; then
  dotnet publish "$root/fuzz/SharpTune.Fuzz" -c Release -o "$bin" --nologo -v q
  # Instrument our parsers and the two third-party parsers we feed untrusted bytes (YAML, Parquet).
  for dll in SharpTune.dll SharpTune.Jinja.dll YamlDotNet.dll Parquet.dll; do sharpfuzz "$bin/$dll"; done
  touch "$bin/.instrumented"
fi

mkdir -p "$out"
rm -rf "$out/findings"
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
start=$(date +%s)
afl-fuzz -i "$root/fuzz/corpus/$target" -o "$out/findings" -t 10000 -m none -V "$seconds" \
  -- dotnet "$bin/SharpTune.Fuzz.dll" "$target" > "$out/afl.log" 2>&1 || true
end=$(date +%s)
stats=$out/findings/default/fuzzer_stats
get() { awk -F' *: *' -v k="$1" '$1==k {print $2}' "$stats"; }
crashes=$(find "$out/findings/default/crashes" -type f -name 'id*' 2>/dev/null | wc -l)
hangs=$(find "$out/findings/default/hangs" -type f -name 'id*' 2>/dev/null | wc -l)
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${FUZZ_RUN:-$target}" "$((end - start))" "$(get execs_done)" "$(get corpus_count)" "$crashes" "$hangs" "$(date -u +%FT%TZ)" \
  | tee -a "$root/artifacts/fuzz/summary.tsv"
