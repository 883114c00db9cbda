"""The ground-truth dataset interface every dataset implements.

A ground-truth dataset is the full Cartesian grid of its generative factors, one image per
combination, stored in mixed-radix order of the factor classes with the last factor fastest
(the order of the official dSprites and Shapes3D files). Images are kept in a compact uint8
*storage* form (bit-packed for binary sets) so a whole set fits on the training device as one
tensor; :meth:`GroundTruthDataset.decode` turns a gathered batch of storage rows into float
images. Batches are gathered by index; there is no per-sample Python on the hot path.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
import torch

Likelihood = Literal["bernoulli", "gaussian"]


def mixed_radix_bases(factor_sizes: tuple[int, ...]) -> np.ndarray:
    """Bases such that ``index = classes @ bases`` with the last factor fastest."""
    sizes = np.asarray(factor_sizes, dtype=np.int64)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)


class GroundTruthDataset(ABC):
    """A dataset whose images are the full grid of known generative factors.

    Subclasses set ``name``, ``factor_names``, ``factor_sizes``, ``num_channels`` and
    implement :meth:`storage` and :meth:`decode`.
    """

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    num_channels: int
    image_size: int = 64
    #: The reconstruction likelihood that fits the pixel values (binary → Bernoulli).
    likelihood: Likelihood = "bernoulli"
    #: Whether an image is a function of its factors alone (no per-observation noise), so
    #: its code can be computed once and reused.
    deterministic: bool = True

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        """Shape of one decoded image, ``(C, H, W)``."""
        return (self.num_channels, self.image_size, self.image_size)

    # -- factors and indices -------------------------------------------------------------
    def classes_to_index(self, classes: np.ndarray) -> np.ndarray:
        """``[n, k]`` factor classes → ``[n]`` row indices (last factor fastest)."""
        classes = np.asarray(classes, dtype=np.int64)
        if classes.ndim != 2 or classes.shape[1] != self.num_factors:
            raise ValueError(
                f"classes must have shape [n, {self.num_factors}], got {classes.shape}"
            )
        sizes = np.asarray(self.factor_sizes)
        if np.any(classes < 0) or np.any(classes >= sizes):
            raise ValueError(f"classes out of range for factor sizes {self.factor_sizes}")
        return classes @ mixed_radix_bases(self.factor_sizes)

    def index_to_classes(self, index: np.ndarray) -> np.ndarray:
        """``[n]`` row indices → ``[n, k]`` factor classes."""
        index = np.asarray(index, dtype=np.int64)
        if np.any(index < 0) or np.any(index >= len(self)):
            raise ValueError(f"index out of range [0, {len(self)})")
        bases = mixed_radix_bases(self.factor_sizes)
        return (index[:, None] // bases) % np.asarray(self.factor_sizes)

    @property
    def varying_factors(self) -> tuple[int, ...]:
        """Indices of the factors that take more than one value (dSprites' colour does not)."""
        return tuple(j for j, size in enumerate(self.factor_sizes) if size > 1)

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` factor-class vectors drawn uniformly and independently, ``[n, k]`` int64."""
        return np.stack([rng.integers(0, s, size=n) for s in self.factor_sizes], axis=1)

    # -- images --------------------------------------------------------------------------
    def content_digest(self) -> str:
        """A short SHA-256 of what the images are: the dataset's name, its factor grid and
        every stored byte (for dSprites 377 MB, ~0.25 s). Equal digests, equal images."""
        stored = np.ascontiguousarray(self.storage())
        h = hashlib.sha256(f"{self.name}|{self.factor_sizes}|{stored.shape}".encode())
        h.update(memoryview(stored).cast("B"))
        return h.hexdigest()[:16]

    @abstractmethod
    def storage(self) -> np.ndarray:
        """All images in compact storage form, row ``i`` = image ``i``, dtype uint8."""

    @abstractmethod
    def decode(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Storage rows ``[B, ...]`` uint8 → float images ``[B, C, H, W]`` in [0, 1].

        Runs on whatever device ``rows`` lives on. Variants with per-observation noise draw
        it from ``generator`` (which must live on the same device).
        """

    def images(self, classes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Float32 images ``[n, C, H, W]`` for the given ``[n, k]`` factor classes."""
        rows = torch.from_numpy(self.storage()[self.classes_to_index(classes)])
        generator = None
        if rng is not None:
            generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        return self.decode(rows, generator).float().numpy()
