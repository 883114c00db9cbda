"""The dataset interfaces: a set of images, and the ground-truth datasets built on it.

An :class:`ImageDataset` is images in a compact uint8 *storage* form (bit-packed for binary
sets) so a whole set fits on the training device as one tensor; :meth:`ImageDataset.decode`
turns a gathered batch of storage rows into float images. Rows ``[0, train_rows)`` are for
training, the rest (if any) are held out for scoring. Batches are gathered by index; there is
no per-sample Python on the hot path.

A :class:`GroundTruthDataset` is the full Cartesian grid of its generative factors, one image
per combination, stored in mixed-radix order of the factor classes with the last factor
fastest (the order of the official dSprites and Shapes3D files). It has no held-out rows.
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


class ImageDataset(ABC):
    """A set of images: ``storage()`` rows, decoded to float ``[B, C, H, W]`` in [0, 1].

    Subclasses set ``name`` and ``num_channels`` and implement :meth:`storage` and
    :meth:`decode`; a set with a held-out split overrides :attr:`train_rows`.
    """

    name: str
    num_channels: int
    image_size: int = 64
    #: The reconstruction likelihood that fits the pixel values (binary → Bernoulli).
    likelihood: Likelihood = "bernoulli"
    #: Whether an image is a function of its row alone (no per-observation noise), so its
    #: code can be computed once and reused.
    deterministic: bool = True
    #: Whether the images come with ground-truth factors (the disentanglement metrics need them).
    has_factors: bool = False

    def __len__(self) -> int:
        return int(self.storage().shape[0])

    @property
    def train_rows(self) -> int:
        """Rows ``[0, train_rows)`` are for training; rows ``[train_rows, len)`` are held out
        for scoring (none by default)."""
        return len(self)

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        """Shape of one decoded image, ``(C, H, W)``."""
        return (self.num_channels, self.image_size, self.image_size)

    def _digest_label(self) -> str:
        """What, besides the stored bytes, tells two sets apart in :meth:`content_digest`."""
        return f"{self.name}|train {self.train_rows}"

    def content_digest(self) -> str:
        """A short SHA-256 of what the images are: the dataset's name, its layout and every
        stored byte (for dSprites 377 MB, ~0.25 s). Equal digests, equal images."""
        stored = np.ascontiguousarray(self.storage())
        h = hashlib.sha256(f"{self._digest_label()}|{stored.shape}".encode())
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


class GroundTruthDataset(ImageDataset):
    """A dataset whose images are the full grid of known generative factors.

    Subclasses set ``name``, ``factor_names``, ``factor_sizes``, ``num_channels`` and
    implement :meth:`storage` and :meth:`decode`. Every row is a training row.
    """

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    has_factors = True

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

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
    def _digest_label(self) -> str:
        return f"{self.name}|{self.factor_sizes}"

    def images(self, classes: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Float32 images ``[n, C, H, W]`` for the given ``[n, k]`` factor classes."""
        rows = torch.from_numpy(self.storage()[self.classes_to_index(classes)])
        generator = None
        if rng is not None:
            generator = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
        return self.decode(rows, generator).float().numpy()
