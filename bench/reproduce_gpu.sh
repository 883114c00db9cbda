#!/usr/bin/env bash
# The two reproductions at GPU scale, side by side on one CUDA card, in one command that fits
# ~8 minutes of an H100-class GPU: capacity-order (γ = 100, C 0 → 25 nats over 40k steps,
# 3 seeds) and beta-ladder (β ∈ {1, 4, 16} × 3 seeds, 10k steps, reference-mode scores).
# Every run is its own process on the card (the model is launch-bound: packing fills it).
#   bash bench/reproduce_gpu.sh [OUT]      (default OUT: reproductions-gpu; reruns reuse runs)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
OUT=${1:-reproductions-gpu}
SCALE=${SCALE:-gpu}  # SCALE=smoke checks the script on a CPU machine in a few minutes
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$(date +%s)
"$PY" -m analysis.reproduce capacity-order --scale "$SCALE" --workers 3 --out "$OUT/capacity-order" &
"$PY" -m analysis.reproduce beta-ladder --scale "$SCALE" --workers 9 --out "$OUT/beta-ladder" &
wait
echo "both reproductions in $(( $(date +%s) - start )) s; reports: $OUT/*/report.md"
