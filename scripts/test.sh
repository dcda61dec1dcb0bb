#!/usr/bin/env bash
# The README's test command: fetch test inputs that are not committed, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-test-data.sh
dotnet test SharpTune.slnx -c Release --nologo "$@"
