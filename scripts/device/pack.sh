#!/usr/bin/env bash
# Packs a SharpTune program for the GPU machine, which has PyTorch (CUDA) but no dotnet:
# a self-contained linux-x64 publish without libtorch's own natives (the machine's PyTorch provides them;
# TorchRuntime finds it through python3), compressed into artifacts/device/<name>.tar.xz.
# Send it with the device tool's carry: ["artifacts/device"], then on the machine:
#   mkdir -p /tmp/app && tar -xJf artifacts/device/<name>.tar.xz -C /tmp/app && /tmp/app/<Program> ...
set -euo pipefail
cd "$(dirname "$0")/../.."
project=${1:-bench/SharpTune.Bench}
name=$(basename "$project")
out=artifacts/device/$name
rm -rf "$out" && mkdir -p artifacts/device
dotnet publish "$project" -c Release -r linux-x64 --self-contained -o "$out" -p:PublishReadyToRun=false >/dev/null
rm -f "$out"/libtorch*.so "$out"/libc10*.so "$out"/libgomp*.so* "$out"/libshm.so "$out"/libaoti_custom_ops.so \
      "$out"/libbackend_with_compiler.so "$out"/libjitbackend_test.so "$out"/libnnapi_backend.so "$out"/libtorchbind_test.so
tar -cJf "artifacts/device/$name.tar.xz" -C "$out" .
rm -rf "$out"
ls -la "artifacts/device/$name.tar.xz"
