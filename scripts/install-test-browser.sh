#!/usr/bin/env bash
# Installs Debian's chromium for the chat page's browser test (tests/SharpTune.Tests/Serving/ChatPageBrowserTests.cs)
# when it is missing. Idempotent and quiet; needs apt-get and root (or sudo). SHARPTUNE_CHROMIUM names another binary.
set -euo pipefail
browser=${SHARPTUNE_CHROMIUM:-/usr/bin/chromium}
[[ -x $browser ]] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "warning: no $browser and no apt-get: install Chromium by hand or set SHARPTUNE_CHROMIUM; the browser test will fail" >&2
    exit 0
fi
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "installing chromium (Debian package) for the chat page's browser test"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq chromium >/dev/null
