"""The official dSprites file format: write it, and read it without ever unpickling.

The official ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` holds ``imgs`` (737280, 64, 64)
uint8 in {0, 1}, ``latents_values`` (737280, 6) float64, ``latents_classes`` (737280, 6) int64 and
``metadata``, a pickled dict. We write the same keys, and read only the three arrays with
``allow_pickle=False``; the metadata is rebuilt from the known factor grid, never unpickled.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from betavae.data.base import mixed_radix_bases
from betavae.data.dsprites import (
    FACTOR_NAMES,
    FACTOR_SIZES,
    ORIENTATIONS,
    POSITIONS,
    SCALES,
    DSprites,
    packed_images,
)

N_IMAGES = int(np.prod(FACTOR_SIZES))


class DatasetFileError(ValueError):
    """A dataset file that is missing, truncated or not in the expected layout."""


def possible_values() -> dict[str, np.ndarray]:
    """Factor values of the official grid (shape is coded 1, 2, 3 as in the official file)."""
    return {
        "color": np.array([1.0]),
        "shape": np.array([1.0, 2.0, 3.0]),
        "scale": SCALES.copy(),
        "orientation": ORIENTATIONS.copy(),
        "posX": POSITIONS.copy(),
        "posY": POSITIONS.copy(),
    }


def all_classes() -> np.ndarray:
    """``[737280, 6]`` int64 factor classes of every row, in file order."""
    index = np.arange(N_IMAGES, dtype=np.int64)
    return (index[:, None] // mixed_radix_bases(FACTOR_SIZES)) % np.asarray(FACTOR_SIZES)


def classes_to_values(classes: np.ndarray) -> np.ndarray:
    """``[n, 6]`` classes → ``[n, 6]`` float64 factor values."""
    table = possible_values()
    return np.stack([table[name][classes[:, i]] for i, name in enumerate(FACTOR_NAMES)], axis=1)


def metadata() -> dict:
    """The metadata dict of the official file, rebuilt from the known grid."""
    return {
        "title": "dSprites dataset (procedurally regenerated)",
        "description": "All combinations of shape, scale, orientation, posX and posY.",
        "version": 1,
        "latents_names": FACTOR_NAMES,
        "latents_possible_values": possible_values(),
        "latents_sizes": np.asarray(FACTOR_SIZES, dtype=np.int64),
    }


def write_npz(path: str | Path, packed: np.ndarray | None = None) -> Path:
    """Write the whole set in the official format (compressed npz, same keys and dtypes)."""
    path = Path(path)
    packed = packed_images() if packed is None else packed
    classes = all_classes()
    imgs = np.unpackbits(packed, axis=-1)  # (N, 64, 64) uint8 in {0, 1}
    np.savez_compressed(
        path,
        imgs=imgs,
        latents_values=classes_to_values(classes),
        latents_classes=classes,
        metadata=np.array(metadata(), dtype=object),
    )
    return path


def _require(ok: bool, path: Path, problem: str) -> None:
    if not ok:
        raise DatasetFileError(f"{path}: {problem}; expected the official dSprites npz layout")


def load_npz(path: str | Path) -> DSprites:
    """Load the official dSprites npz (or one we wrote) as a :class:`DSprites`.

    Never unpickles: arrays are read with ``allow_pickle=False`` and ``metadata`` is skipped.
    Raises :class:`DatasetFileError` naming what is wrong with a bad file.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file")
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
            keys = set(npz.files)
            for key in ("imgs", "latents_classes", "latents_values"):
                _require(key in keys, path, f"missing key {key!r} (found {sorted(keys)})")
            # The small arrays first, so a wrong file fails before 3 GB of images are read.
            _check_latents(path, npz["latents_classes"], npz["latents_values"])
            imgs = npz["imgs"]
    except DatasetFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise DatasetFileError(f"{path}: unreadable or truncated npz ({err})") from err
    _require(imgs.dtype == np.uint8, path, f"imgs has dtype {imgs.dtype}, not uint8")
    _require(imgs.shape == (N_IMAGES, 64, 64), path, f"imgs has shape {imgs.shape}")
    _require(int(imgs.max()) <= 1, path, f"imgs is not binary (max value {int(imgs.max())})")
    return DSprites(packed=np.packbits(imgs, axis=-1))


def _check_latents(path: Path, classes: np.ndarray, values: np.ndarray) -> None:
    _require(classes.shape == (N_IMAGES, 6), path, f"latents_classes has shape {classes.shape}")
    _require(
        np.issubdtype(classes.dtype, np.integer),
        path,
        f"latents_classes has dtype {classes.dtype}, not an integer type",
    )
    _require(values.shape == (N_IMAGES, 6), path, f"latents_values has shape {values.shape}")
    _require(
        bool(np.all(classes @ mixed_radix_bases(FACTOR_SIZES) == np.arange(N_IMAGES))),
        path,
        "rows are not in the official order (latents_classes, posY fastest)",
    )
