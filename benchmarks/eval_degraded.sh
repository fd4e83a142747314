#!/usr/bin/env bash
# The degraded-input evaluations of the default's photo pair on Set5, Set14 and B100 (needs ../shared/data; about
# 30 minutes on 2 CPU cores). docs/results/degraded.json and degraded-x1.json hold its run of issue 11, when the
# default was mdsr-medium and its photo model mdsr-medium-photo (their card and docs/photos.md show them); run
# again it measures today's default and mspan-photo. Run from the repo root, then
# `python benchmarks/degraded_table.py docs/results/degraded.json docs/results/degraded-x1.json`.
set -euo pipefail
B=../shared/data/benchmark
S="$B/Set5 $B/Set14 $B/B100"
SR=.venv/bin/superres
date
# every method on fixed degraded LR made from the HR (seed 0), scored against the clean HR, fp32
$SR eval --data $S --scale 2,3,4 --degrade clean,jpeg:75,jpeg:50,noise:10,real --seed 0 \
    --methods bicubic,model,photo,auto --json docs/results/degraded.json -q
date
# restoration at the same size: the degraded image itself is the baseline (the network runs at x2 on the
# full-size image, 4x the work of x2: Set5 and Set14 only, to keep this under 10 minutes here)
$SR eval --data $B/Set5 $B/Set14 --scale 1 --degrade jpeg:75,jpeg:50,noise:10,real --seed 0 \
    --methods bicubic,photo,auto --json docs/results/degraded-x1.json -q
date
