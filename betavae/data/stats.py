"""Summary statistics of a dataset's pixels: the mean image and the reconstruction NLL of a
model that ignores its input.

A decoder that ignores its input can do no better than predict every image by the mean image;
under the Bernoulli likelihood its NLL is the summed binary entropy of the per-pixel means, the
ceiling any reconstruction must beat to show that the latents carry something.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from betavae.data.base import GroundTruthDataset
from betavae.data.dsprites import DSprites


def mean_image(dataset: GroundTruthDataset, chunk: int = 8192) -> np.ndarray:
    """The mean over every image of the set, ``[C, H, W]`` float64."""
    if type(dataset) is DSprites:  # bit-packed binary rows: count the bits directly
        storage, counts = dataset.storage(), np.zeros((64, 64), dtype=np.int64)
        for start in range(0, len(storage), chunk):
            counts += np.unpackbits(storage[start : start + chunk], axis=-1).sum(0, dtype=np.int64)
        return (counts / len(storage))[None]
    with warnings.catch_warnings():  # read-only storage; only read here
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        storage = torch.from_numpy(np.ascontiguousarray(dataset.storage()))
    total = torch.zeros(dataset.observation_shape, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    for start in range(0, len(storage), chunk):
        total += dataset.decode(storage[start : start + chunk], generator).sum(0)
    return (total / len(storage)).numpy()


def ignore_input_nll(dataset: GroundTruthDataset) -> float:
    """Bernoulli NLL (nats per image) of predicting every image by the mean image."""
    p = np.clip(mean_image(dataset), 1e-12, 1 - 1e-12)
    return float(-(p * np.log(p) + (1 - p) * np.log1p(-p)).sum())
