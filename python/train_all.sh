#!/bin/sh
# Train the three shipped models one after another on one CPU thread, then export them.
# Each run checkpoints to python/runs/NAME/latest.pt every few minutes and stops at --steps
# or at its --minutes cap, whichever comes first; export.py takes the latest checkpoints.
# The denoiser trains in two phases: plain denoising first, then (resumed, --minutes counting
# the first phase too) with partial targets that make the noise-level map a strength control.
set -e
cd "$(dirname "$0")"
PY=${PY:-../.venv/bin/python}
$PY train_sr.py --scale 2 --steps 6500 --batch 24 --minutes 20 --resume
$PY train_denoise.py --steps 5000 --batch 16 --minutes 26 --resume
$PY train_denoise.py --steps 9000 --batch 16 --minutes 46 --partial 0.4 --over 0.1 --resume
$PY train_sr.py --scale 4 --steps 6500 --batch 24 --minutes 20 --resume
$PY export.py
