"""Pictures of one trained model: latent traversals, reconstructions, per-latent KL curves.

Written as PNG files into a trial's final checkpoint; the MLflow callback uploads them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from betavae.training import Trainer

TRAVERSAL_SPAN = 2.5
"""Traversals move one latent over mu ± this many prior standard deviations."""


def save_grid(
    frames: torch.Tensor, path: Path, *, nrow: int, padding: int = 2, pad_value: float = 0.5
) -> Path:
    """Frames ``[N, C, H, W]`` in [0, 1] → one PNG, ``nrow`` frames per row, ``padding``
    pixels of ``pad_value`` around each (the picture ``torchvision.utils.save_image`` draws,
    without importing torchvision: ~1.5 s per worker and driver)."""
    from PIL import Image

    x = frames.detach().cpu().float()
    count, channels, height, width = x.shape
    columns, rows = min(nrow, count), -(-count // nrow)
    cell_h, cell_w = height + padding, width + padding
    grid = torch.full((channels, rows * cell_h + padding, columns * cell_w + padding), pad_value)
    for i, frame in enumerate(x):
        top, left = (i // columns) * cell_h + padding, (i % columns) * cell_w + padding
        grid[:, top : top + height, left : left + width] = frame
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    # Grey frames stay one channel (an 8-bit grey PNG, a third of the RGB one's bytes).
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path, optimize=True)
    return path


@torch.inference_mode()
def _decode(trainer: Trainer, z: torch.Tensor) -> torch.Tensor:
    trainer.model.eval()
    with trainer._autocast():
        logits = trainer.model.decode(z.to(trainer.device))
    trainer.model.train()
    return torch.sigmoid(logits.float()).cpu()


def _images(trainer: Trainer, count: int, seed: int) -> torch.Tensor:
    """``count`` images drawn by ``seed``: of any factors, or, on a dataset without factors,
    from its held-out rows (all rows when fewer are held out)."""
    rng = np.random.default_rng(seed)
    dataset = trainer.dataset
    if not dataset.has_factors:
        rows = np.asarray(trainer.eval_rows)
        rows = np.sort(rng.choice(rows, size=min(count, len(rows)), replace=False))
        stored = torch.from_numpy(np.ascontiguousarray(dataset.storage()[rows]))
        return dataset.decode(stored).float()
    index = rng.choice(len(dataset), size=count, replace=False)
    classes = dataset.index_to_classes(np.sort(index))
    return torch.as_tensor(dataset.images(classes, rng), dtype=torch.float32)


def latent_traversals(
    trainer: Trainer, path: Path, kl_per_dim: Sequence[float], *, columns: int = 9, seed: int = 0
) -> Path:
    """One row per latent, most informative (highest KL) first; columns sweep that latent."""
    x = _images(trainer, 1, seed)
    mu = torch.as_tensor(trainer.encode(x))[0]
    order = np.argsort(-np.asarray(kl_per_dim, dtype=float), kind="stable")
    offsets = torch.linspace(-TRAVERSAL_SPAN, TRAVERSAL_SPAN, columns)
    z = mu.repeat(len(order), columns, 1)  # [d, columns, d]
    for row, latent in enumerate(order):
        z[row, :, latent] = mu[latent] + offsets
    frames = _decode(trainer, z.reshape(-1, mu.numel()))
    save_grid(frames, path, nrow=columns)
    return path


def reconstructions(trainer: Trainer, path: Path, *, count: int = 8, seed: int = 1) -> Path:
    """Top row: data; bottom row: the decoded posterior means."""
    x = _images(trainer, count, seed)
    mu = torch.as_tensor(trainer.encode(x))
    frames = torch.cat([x, _decode(trainer, mu)])
    save_grid(frames, path, nrow=count)
    return path


def kl_curves(history: Sequence[dict], path: Path, *, title: str = "") -> Path:
    """Per-latent KL (nats) against training step, with the capacity target C (Burgess fig.)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in history]
    kl = np.array([row["kl_per_dim"] for row in history], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100, layout="constrained")
    for latent in np.argsort(-kl[-1]):
        ax.plot(steps, kl[:, latent], label=f"z{latent}", linewidth=1.2)
    capacity = [row.get("capacity") for row in history]
    if any(c for c in capacity):
        ax.plot(steps, capacity, "k--", linewidth=1, label="C")
    ax.set(xlabel="step", ylabel="KL per latent (nats)", title=title)
    ax.legend(fontsize=6, ncol=2, loc="upper left")
    fig.savefig(path)
    plt.close(fig)
    return path
