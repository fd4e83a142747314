#!/usr/bin/env bash
# The evaluations behind the README tables and the model card (needs ../shared/data; about 10 minutes on
# 2 CPU cores). Run from the repo root: benchmarks/eval_bundled.sh, then benchmarks/floor_table.py and
# benchmarks/readme_tables.py on the JSON files it writes, and `python benchmarks/model_cards.py --manifest-only`
# to copy the models' Y-PSNR from docs/results/eval.json into src/superres/weights/manifest.json.
set -euo pipefail
ROOT=$(pwd)
B="$ROOT/../shared/data/benchmark"
S="$B/Set5 $B/Set14 $B/B100"
SR="$ROOT/.venv/bin/superres"
# The previous per-scale models (edsr-medium x2/x3/x4, bundled until mdsr-medium replaced them) are no longer in
# the tree: they come from the git history, configs/previous/ as of the commit that made mdsr-medium the default
# (unchanged from there until their removal). Checked out under a temporary folder and evaluated from there, so
# that the method labels in the JSON stay "configs/previous/edsr-medium-xN.safetensors".
PREVIOUS=8c70c7ca7e297c0270f5f48e288fa6e67f51025f
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/configs/previous"
for s in 2 3 4; do
    git show "$PREVIOUS:configs/previous/edsr-medium-x$s.safetensors" > "$tmp/configs/previous/edsr-medium-x$s.safetensors"
done
date
# the new default, fp32 (the protocol), every integer and non-integer factor, Y and RGB
$SR eval --data $S --scale 2,3,4,1.5,2.5,3.5 --channel y,rgb --methods bilinear,bicubic,model,model+correct \
    --json docs/results/eval.json -q
date
# the same network as upscale runs it (precision auto)
$SR eval --data $S --scale 2,3,4,1.5,2.5,3.5 --methods model --precision auto --json docs/results/auto.json -q
date
# the previous per-scale models at their scale and where the former --outscale used them: x2 for 1.5, x3 for 2.5, x4 for 3.5
cd "$tmp"
for pair in 2:1.5,2 3:2.5,3 4:3.5,4; do
    s=${pair%%:*}
    $SR eval --data $S --scale "${pair#*:}" --methods "configs/previous/edsr-medium-x$s.safetensors" \
        --json "$ROOT/docs/results/previous-x$s.json" -q
done
date
