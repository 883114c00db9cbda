"""Summary statistics of a dataset's pixels: the mean image and the reconstruction NLL of a
model that ignores its input.

A decoder that ignores its input can do no better than predict every image by the mean image;
under the Bernoulli likelihood (cross-entropy on [0, 1] intensities, summed over pixels) its
NLL is the summed binary entropy of the per-pixel means, for grey levels as for binary pixels,
the ceiling any reconstruction must beat to show that the latents carry something. With grey
levels the floor is not 0 either: a perfect reconstruction scores the summed binary entropy of
the pixels themselves (:func:`bernoulli_floor_nll`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from betavae.data.base import ImageDataset
from betavae.data.dsprites import DSprites


def mean_image(dataset: ImageDataset, chunk: int = 8192) -> np.ndarray:
    """The mean over every image of the set, ``[C, H, W]`` float64."""
    if type(dataset) is DSprites:  # bit-packed binary rows: count the bits directly
        storage, counts = dataset.storage(), np.zeros((64, 64), dtype=np.int64)
        for start in range(0, len(storage), chunk):
            counts += np.unpackbits(storage[start : start + chunk], axis=-1).sum(0, dtype=np.int64)
        return (counts / len(storage))[None]
    storage = _storage(dataset)
    total = torch.zeros(dataset.observation_shape, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    for start in range(0, len(storage), chunk):
        total += dataset.decode(storage[start : start + chunk], generator).sum(0)
    return (total / len(storage)).numpy()


def _storage(dataset: ImageDataset) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only storage; only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(dataset.storage()))


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.double().clamp(1e-12, 1 - 1e-12)
    return -(p * p.log() + (1 - p) * torch.log1p(-p))


def bernoulli_floor_nll(dataset: ImageDataset, chunk: int = 8192) -> float:
    """The Bernoulli NLL (nats per image) of a perfect reconstruction: the summed binary
    entropy of each pixel's intensity, averaged over the images (0 for binary images)."""
    storage, total = _storage(dataset), 0.0
    generator = torch.Generator().manual_seed(0)
    for start in range(0, len(storage), chunk):
        images = dataset.decode(storage[start : start + chunk], generator)
        total += float(_binary_entropy(images).sum())
    return total / len(storage)


def ignore_input_nll(dataset: ImageDataset) -> float:
    """Bernoulli NLL (nats per image) of predicting every image by the mean image."""
    p = np.clip(mean_image(dataset), 1e-12, 1 - 1e-12)
    return float(-(p * np.log(p) + (1 - p) * np.log1p(-p)).sum())
