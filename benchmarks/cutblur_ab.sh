#!/usr/bin/env bash
# CutBlur A/B for the photo model (needs ../shared/data; about 12 minutes on 2 CPU cores): two short runs
# from the clean default, identical but for --cutblur, each scored on the photo run's 10 held-out images
# (the photo model alone, strength 1) on clean and degraded inputs. Run from the repo root after the photo
# run exists in runs/photo (its config.json names the held-out images). OUT defaults to /tmp/cutblur.
set -euo pipefail
OUT=${OUT:-/tmp/cutblur}
for P in 0 0.5; do
    .venv/bin/superres train --config configs/mdsr-photo.toml --iters 400 --warmup-iters 40 --val-every 200 \
        --checkpoint-every 200 --log-every 50 --cutblur $P --out "$OUT/cutblur-$P" > "$OUT-$P-train.log" 2>&1
    .venv/bin/python benchmarks/denoise_frontier.py --run runs/photo --photo "$OUT/cutblur-$P/best.safetensors" \
        --cases clean,jpeg:90,jpeg:75,jpeg:50,noise:5,noise:10,real --strengths 1
done
