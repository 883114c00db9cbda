"""Shapes3D (Burgess & Kim, 2018) from its official ``3dshapes.h5``.

The file holds ``images`` (480000, 64, 64, 3) uint8 and ``labels`` (480000, 6) float64, rows
in mixed-radix order of the factors floor hue 10, wall hue 10, object hue 10, scale 8, shape 4,
orientation 15 (orientation fastest). The whole image array is read into memory once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from betavae.data.base import GroundTruthDataset, mixed_radix_bases
from betavae.data.dsprites_npz import DatasetFileError

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)


class Shapes3D(GroundTruthDataset):
    """Shapes3D images (stored as ``[N, 64, 64, 3]`` uint8) with their six factors."""

    name = "shapes3d"
    factor_names = FACTOR_NAMES
    num_channels = 3
    likelihood = "bernoulli"

    def __init__(self, images: np.ndarray, factor_sizes: tuple[int, ...] = FACTOR_SIZES) -> None:
        self.factor_sizes = tuple(factor_sizes)
        if images.shape != (len(self), 64, 64, 3) or images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 of shape ({len(self)}, 64, 64, 3), "
                f"got {images.dtype} {images.shape}"
            )
        self._images = images

    def storage(self) -> np.ndarray:
        return self._images

    def decode(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # (B, H, W, C) → (B, C, H, W): a channels-last view, no copy.
        return rows.permute(0, 3, 1, 2).float() / 255.0


def check_h5(path: str | Path, factor_sizes: tuple[int, ...] = FACTOR_SIZES) -> None:
    """Check ``3dshapes.h5``'s layout without reading its images.

    Checks keys, shapes, dtypes and that the labels follow the documented row order; raises
    :class:`DatasetFileError` naming what is wrong. ``factor_sizes`` exists so tests can use a
    small file.
    """
    import h5py

    path = Path(path)
    n = int(np.prod(factor_sizes))

    def bad(problem: str) -> DatasetFileError:
        return DatasetFileError(f"{path}: {problem}; expected the Shapes3D 3dshapes.h5 layout")

    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            for key in ("images", "labels"):
                if key not in f or not isinstance(f[key], h5py.Dataset):
                    raise bad(f"missing dataset {key!r} (found {sorted(f.keys())})")
            if f["images"].shape != (n, 64, 64, 3) or f["images"].dtype != np.uint8:
                raise bad(f"images is {f['images'].dtype} {f['images'].shape}")
            if f["labels"].shape != (n, 6) or f["labels"].dtype.kind not in "fiu":
                raise bad(f"labels is {f['labels'].dtype} {f['labels'].shape}")
            labels = f["labels"][()]
    except DatasetFileError:
        raise
    except OSError as err:
        raise DatasetFileError(f"{path}: unreadable or truncated HDF5 file ({err})") from err
    index = np.arange(n, dtype=np.int64)[:, None]
    expected = (index // mixed_radix_bases(factor_sizes)) % np.asarray(factor_sizes)
    for j, name in enumerate(FACTOR_NAMES):
        values = np.unique(labels[:, j])
        if len(values) != factor_sizes[j]:
            raise bad(f"label {name!r} takes {len(values)} values, expected {factor_sizes[j]}")
        if not np.array_equal(np.searchsorted(values, labels[:, j]), expected[:, j]):
            raise bad(f"rows are not in the documented order (label {name!r})")


def load_h5(path: str | Path, factor_sizes: tuple[int, ...] = FACTOR_SIZES) -> Shapes3D:
    """Load ``3dshapes.h5`` after :func:`check_h5`; ``factor_sizes`` as there."""
    import h5py

    check_h5(path, factor_sizes)
    try:
        with h5py.File(path, "r") as f:
            images = f["images"][()]
    except OSError as err:
        raise DatasetFileError(f"{path}: unreadable or truncated HDF5 file ({err})") from err
    return Shapes3D(images, factor_sizes)
