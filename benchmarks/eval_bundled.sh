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
date
# the new default, fp32 (the protocol), every integer and non-integer factor, Y and RGB
$SR eval --data $S --scale 2,3,4,1.5,2.5,3.5 --channel y,rgb --methods bilinear,bicubic,model,model+correct \
    --json docs/results/eval.json -q
date
# the same network as upscale runs it (precision auto)
$SR eval --data $S --scale 2,3,4,1.5,2.5,3.5 --methods model --precision auto --json docs/results/auto.json -q
date
# the default it replaced (issue 24), still bundled: mdsr-medium, fp32, every factor
$SR eval --data $S --scale 2,3,4,1.5,2.5,3.5 --methods mdsr-medium --json docs/results/previous.json -q
date
