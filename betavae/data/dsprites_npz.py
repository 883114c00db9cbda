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


#: Images whose pixels :func:`check_npz` reads (the first ones in the file) to spot non-binary data.
SAMPLE_IMAGES = 1024


def check_npz(path: str | Path) -> None:
    """Check a dSprites npz's layout without decoding its 3 GB of images.

    Reads the keys, the array headers, the factor arrays and the first :data:`SAMPLE_IMAGES`
    images. Never unpickles. Raises :class:`DatasetFileError` naming what is wrong; a file
    that passes can still fail :func:`load_npz` if a later image is corrupt or non-binary.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            keys = {name.removesuffix(".npy") for name in zf.namelist()}
            for key in ("imgs", "latents_classes", "latents_values"):
                _require(key in keys, path, f"missing key {key!r} (found {sorted(keys)})")
            with zf.open("latents_classes.npy") as f:
                classes = np.lib.format.read_array(f, allow_pickle=False)
            with zf.open("latents_values.npy") as f:
                values = np.lib.format.read_array(f, allow_pickle=False)
            _check_latents(path, classes, values)
            with zf.open("imgs.npy") as f:
                shape, dtype = _npy_header(f)
                _require(dtype == np.uint8, path, f"imgs has dtype {dtype}, not uint8")
                count = min(SAMPLE_IMAGES, int(np.prod(shape[:1])))
                sample = np.frombuffer(f.read(count * int(np.prod(shape[1:]))), np.uint8)
    except DatasetFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise DatasetFileError(f"{path}: unreadable or truncated npz ({err})") from err
    _require(
        sample.size == 0 or int(sample.max()) <= 1,
        path,
        f"imgs is not binary (max value {int(sample.max()) if sample.size else 0})",
    )
    _require(shape == (N_IMAGES, 64, 64), path, f"imgs has shape {shape}")


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    return tuple(shape), dtype


def load_npz(path: str | Path) -> DSprites:
    """Load the official dSprites npz (or one we wrote) as a :class:`DSprites`.

    Never unpickles: arrays are read with ``allow_pickle=False`` and ``metadata`` is skipped.
    Raises :class:`DatasetFileError` naming what is wrong with a bad file (see
    :func:`check_npz`, which runs first).
    """
    path = Path(path)
    check_npz(path)
    try:
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
            imgs = npz["imgs"]
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as err:
        raise DatasetFileError(f"{path}: unreadable or truncated npz ({err})") from err
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
