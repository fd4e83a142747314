#!/usr/bin/env bash
# Stage what benchmarks/gpu/run.sh needs into gpu-stage/ (ignored by git; the device tool carries it, 64 MiB at
# most, and ../shared does not travel): T91 and BSDS500-test (31 MB; BSD200's 50 MB of PNG would pass the limit)
# and the teachers of configs/mspan.toml (12 MB). Run here, from the repo root, then on the lent GPU:
#   run(command="bash benchmarks/gpu/run.sh", carry=["gpu-stage"], timeout_s=560)
set -euo pipefail
S=../shared
rm -rf gpu-stage && mkdir -p gpu-stage/data gpu-stage/models
cp -r "$S/data/train/T91" "$S/data/train/BSDS500-test" gpu-stage/data/
for f in span_x2_ch48 rlfn_x2 smfanet_df2k_x2 imdn_x3 span_x4_ch48 rlfn_x4 smfanet_df2k_x4; do
    cp "$S/models/$f.safetensors" gpu-stage/models/
done
du -sh gpu-stage
