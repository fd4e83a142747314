#!/usr/bin/env bash
# The targets of issue 24 in one run: the bundled default against the published checkpoints it is measured by
# (SPAN ch48 at x2 and x4, IMDN at x3; RLFN, SMFANet and CARN-M beside them) and the default it replaced
# (mdsr-medium), Y-PSNR on Set5, Set14 and B100, fp32, MATLAB-bicubic LR, shave = scale. Needs ../shared (data
# and models); a few minutes on 2 CPU cores. Then `python benchmarks/targets_table.py` prints the table.
set -euo pipefail
ROOT=$(pwd)
B="$ROOT/../shared/data/benchmark"
M="$ROOT/../shared/models"
S="$B/Set5 $B/Set14 $B/B100"
SR="$ROOT/.venv/bin/superres"
mkdir -p docs/results/targets
$SR eval --data $S --scale 2 -q --json docs/results/targets/x2.json \
    --methods model,mdsr-medium,$M/span_x2_ch48.safetensors,$M/rlfn_x2.safetensors,$M/smfanet_df2k_x2.safetensors,$M/imdn_x2.safetensors,$M/carn_m.safetensors
$SR eval --data $S --scale 3 -q --json docs/results/targets/x3.json \
    --methods model,mdsr-medium,$M/imdn_x3.safetensors,$M/carn_m.safetensors
$SR eval --data $S --scale 4 -q --json docs/results/targets/x4.json \
    --methods model,mdsr-medium,$M/span_x4_ch48.safetensors,$M/rlfn_x4.safetensors,$M/smfanet_df2k_x4.safetensors,$M/imdn_x4.safetensors,$M/carn_m.safetensors
