#!/usr/bin/env bash
# --denoise auto+chain against auto (the default) on the first 25 B100 images (as benchmarks/photo_targets.sh),
# Set5 and Set14, none of which played a part in choosing the chain detector's cut-off: x2, x3 and x4, each of
# issue 25's degradations (seed 0), fp32; about 2 minutes on 2 CPU cores. Writes docs/results/chain-sets.json.
# Run from the repo root; then `python benchmarks/chain_sets_table.py docs/results/chain-sets.json`.
set -euo pipefail
B=../shared/data/benchmark
SR=.venv/bin/superres
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
SUB="$TMP/B100-25"
mkdir "$SUB"
for f in $(ls "$B/B100/HR" | sort | head -25); do ln -s "$(realpath "$B/B100/HR/$f")" "$SUB/$f"; done
$SR eval --data "$SUB" "$B/Set5" "$B/Set14" --scale 2,3,4 --degrade clean,jpeg:75,jpeg:50,noise:10,real --seed 0 \
    --methods bicubic,auto,auto+chain --json docs/results/chain-sets.json -q
