#!/usr/bin/env bash
# The README's test command: fetch test inputs that are not committed (and the browser the chat page is tested in), then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/fetch-test-data.sh
./scripts/install-test-browser.sh
dotnet test SharpTune.slnx -c Release --nologo "$@"
