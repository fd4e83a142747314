#!/usr/bin/env bash
# The chain detector on Set5 and Set14, which played no part in choosing its cut-off: `--denoise auto` at x2 and
# x4 on each degradation (seed 0), with the detector and without it (its weights file moved aside for the
# second run, so imaging.damage finds none; put back on exit). Writes docs/results/chain-sets-with.json and
# chain-sets-without.json; about 5 minutes on 2 CPU cores. Run from the repo root.
set -euo pipefail
B=../shared/data/benchmark
SR=.venv/bin/superres
W=src/superres/weights/chain.safetensors
ARGS=(--data "$B/Set5" "$B/Set14" --scale 2,4 --degrade clean,jpeg:75,jpeg:50,noise:10,real --seed 0
    --methods bicubic,auto -q)
$SR eval "${ARGS[@]}" --json docs/results/chain-sets-with.json
mv "$W" "$W.aside"
trap 'mv "$W.aside" "$W"' EXIT
$SR eval "${ARGS[@]}" --json docs/results/chain-sets-without.json
