#!/usr/bin/env bash
# One command on a CUDA machine: our training loop against the typical loop on the GPU
# (fp32 / bf16, torch.compile off and on, batch 64 and 256), then the aggregate throughput of
# 4 trials sharing the GPU (what --gpus-per-trial 0.25 does). Prints tables; ~3-5 minutes.
#   bash bench/gpu.sh            (needs torch with CUDA, numpy, safetensors, tqdm importable)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" bench/train_throughput.py --device cuda --threads 4 --steps 400 --warmup 50 \
    --batch-sizes 64 256 --variants fp32 bf16 fp32+compile bf16+compile

echo "--- metric suite after 3000 training steps on the GPU (encoding on the GPU, metrics on the CPU):"
"$PY" bench/metrics.py --device cuda --threads 2 --train-steps 3000

echo "--- 4 trials at once on one GPU (bf16, batch 64, no compile), images/s each:"
for i in 1 2 3 4; do
    "$PY" - <<'PY' &
import torch
from betavae.config import TrainConfig
from betavae.data import DSprites
from betavae.training import Trainer
torch.set_num_threads(2)
t = Trainer(TrainConfig(steps=1500, precision="bf16", device="cuda"), DSprites())
t.fit(until=100, log_every=100)
rates = []
t.fit(log_every=1400, callback=lambda m: rates.append(m["images_per_s"]))
print(f"{rates[-1]:.0f}")
PY
done
wait
