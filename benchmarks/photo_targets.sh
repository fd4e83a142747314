#!/usr/bin/env bash
# The photo model's targets (issue 25) on the first 25 images of B100 (sorted by name), fp32, seed 0: at x2 the
# gain of each method over bicubic on the same degraded LR, and every fixed denoise strength, so that auto can be
# compared with the best fixed strength per image; at x3 the default and its photo model; at x4 both against the
# clean DIV2K models of ../shared/models and Real-ESRGAN x4plus. About 15 minutes on 2 CPU cores. SCALES (default
# "2 3 4") runs some of the three, e.g. `SCALES=4 bash benchmarks/photo_targets.sh`. Then
# `python benchmarks/photo_table.py docs/results/photo-x2.json docs/results/photo-x3.json docs/results/photo-x4.json`.
set -euo pipefail
HR=../shared/data/benchmark/B100/HR
M=../shared/models
SR=.venv/bin/superres
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
SUB="$TMP/B100-25"
mkdir "$SUB"
for f in $(ls "$HR" | sort | head -25); do ln -s "$(realpath "$HR/$f")" "$SUB/$f"; done
KINDS=clean,jpeg:75,jpeg:50,noise:10,real
FIXED=$(seq -s, -f "denoise=%.1f" 0.1 0.1 0.9)
SCALES=${SCALES:-2 3 4}
runs() { [[ " $SCALES " == *" $1 "* ]]; }
date
if runs 2; then
    $SR eval --data "$SUB" --scale 2 --degrade $KINDS --seed 0 --methods "bicubic,model,photo,auto,$FIXED" \
        --json docs/results/photo-x2.json -q
    date
fi
if runs 3; then
    $SR eval --data "$SUB" --scale 3 --degrade $KINDS --seed 0 --methods bicubic,model,photo,auto \
        --json docs/results/photo-x3.json -q
    date
fi
runs 4 || exit 0
CLEAN="$M/span_x4_ch48.safetensors,$M/rlfn_x4.safetensors,$M/imdn_x4.safetensors,$M/smfanet_df2k_x4.safetensors,$M/carn_m.safetensors"
# Real-ESRGAN's compact realesr-general-x4v3, its wdn twin and their blend at -dn 0.5 (Real-ESRGAN's default), where
# they are staged (GENERAL, default /work/staging/models: benchmarks/ncnn_srvgg.py rebuilds them from their ncnn
# export; docs/photos.md says where that is)
GENERAL=${GENERAL:-/work/staging/models}
EXTRA=""
if .venv/bin/python -c "import sys; sys.path.insert(0, 'benchmarks'); from pathlib import Path
from common import realesr_general_dn; from superres.models import save_weights
blend = realesr_general_dn(Path(sys.argv[1]))
sys.exit(1) if blend is None else save_weights(blend, sys.argv[2])" "$GENERAL" "$TMP/realesr-general-x4v3-dn0.5.safetensors"
then
    EXTRA=",$GENERAL/realesr-general-x4v3.safetensors,$TMP/realesr-general-x4v3-dn0.5.safetensors"
    EXTRA="$EXTRA,$GENERAL/realesr-general-wdn-x4v3.safetensors"
else
    echo "realesr-general-x4v3 and its wdn twin are not staged in $GENERAL: left out" >&2
fi
$SR eval --data "$SUB" --scale 4 --degrade $KINDS --seed 0 \
    --methods "bicubic,model,photo,auto,$CLEAN,$M/RealESRGAN_x4plus.safetensors$EXTRA" \
    --json docs/results/photo-x4.json -q
date
