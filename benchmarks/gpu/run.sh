#!/usr/bin/env bash
# One lent GPU, one call (benchmarks/gpu/stage.sh first): the tests that need CUDA, then MSPAN in its training
# form (gain 2) from the published SPAN files, distilled as configs/mspan.toml does, for as long as the call
# allows; the run folder comes back under $OUT (best.safetensors, log.csv, last.pt to resume here).
# Plan: about 1 minute of setup and tests, then ITERS steps (default 20000; a few minutes on an H100).
set -uo pipefail
ITERS=${ITERS:-20000}
OUT=${OUT:-out-gpu}
# the device's own Python and torch (no network there: a missing package travels as a wheel, see the device
# tool's README); superres itself runs from the source tree
export PYTHONPATH=src PYTHONUNBUFFERED=1
python3 -m pytest -m gpu -q -p no:cacheprovider
M=gpu-stage/models
python3 -m superres train --data gpu-stage/data/T91 gpu-stage/data/BSDS500-test --scale 2,3,4 --preset mspan \
    --init $M/span_x2_ch48.safetensors $M/span_x4_ch48.safetensors \
    --teacher $M/span_x2_ch48.safetensors $M/rlfn_x2.safetensors $M/smfanet_df2k_x2.safetensors \
              $M/imdn_x3.safetensors $M/span_x4_ch48.safetensors $M/rlfn_x4.safetensors $M/smfanet_df2k_x4.safetensors \
    --teacher-weight 0.7 --holdout 12 --iters "$ITERS" --batch-size 64 --patch-size 64 --lr 2e-4 --min-lr 1e-6 \
    --schedule cosine --warmup-iters 500 --ema 0.999 --val-every 2000 --checkpoint-every 1000 --log-every 200 \
    --out "$OUT/mspan-gpu" 2>&1 | grep -v skipping
