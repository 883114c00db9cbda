"""The user's own images, without factor labels: ``--dataset images:PATH``.

PATH is a folder of PNG/JPEG files (``.png``, ``.jpg``, ``.jpeg`` in any case; subfolders
included; names starting with ``.`` and other files skipped; rows in sorted order of the
relative paths) or a ``.npy``/``.npz`` array of images (``[N, H, W]``, ``[N, H, W, C]`` or
``[N, C, H, W]``, C in 1–4; uint8, bool, or float in [0, 1]; an ``.npz`` holds one array, or
the images under the key ``images`` (else ``imgs``)).

Every image becomes 64×64: centre-cropped to a square of its short side (the extra column or
row of an odd difference dropped on the right or bottom), then downsampled with Pillow's BOX
filter: each source pixel counts once, with equal weight, in the output pixel whose
footprint holds its centre (a centre on a boundary counts in the earlier one), rounded to 8
bits after each axis; an exact block average when the side is a multiple of 64.
Images under 64 px on the short side are refused, never upsampled. Greyscale stays one
channel, colour three; alpha is dropped (not composited); palette images become greyscale
when their palette is grey, else colour; 16-bit greyscale is scaled to 8 bits; JPEGs are
turned upright by their EXIF orientation. A set mixing greyscale and colour is refused.

The images are stored as uint8 ``[N, 64, 64, C]`` in a fixed seeded order; the last
``max(1, N // 10)`` rows are held out for scoring, the rest are for training.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from betavae.data.base import ImageDataset
from betavae.data.image_array import check_array, read_array
from betavae.data.image_folder import (
    ALLOWED_PATH,
    EXTENSIONS,
    SIZE,
    check_folder,
    file_error,
    image_files,
    read_folder,
)

#: Every image count in 10 is held out (at least one), chosen by a permutation with this seed.
HOLDOUT_DIVISOR, HOLDOUT_SEED = 10, 0


class UserImages(ImageDataset):
    """Images without factors, ``[N, 64, 64, C]`` uint8; rows ``[train_rows, N)`` held out.

    ``sources`` names where each row came from (a file's path relative to the folder, or
    ``NAME[i]`` for row i of an array file).
    """

    name = "images"
    has_factors = False
    likelihood = "bernoulli"

    def __init__(
        self, images: np.ndarray, train_rows: int, sources: Sequence[str] | None = None
    ) -> None:
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:3] != (SIZE, SIZE):
            raise ValueError(
                f"images must be uint8 [N, 64, 64, C], got {images.dtype} {images.shape}"
            )
        if images.shape[3] not in (1, 3):
            raise ValueError(f"images must have 1 or 3 channels, got {images.shape[3]}")
        if not 1 <= train_rows <= len(images):
            raise ValueError(f"train_rows must be in [1, {len(images)}], got {train_rows}")
        if sources is not None and len(sources) != len(images):
            raise ValueError(f"{len(sources)} sources for {len(images)} images")
        self._images, self._train_rows = images, int(train_rows)
        self.num_channels = int(images.shape[3])
        self.sources = tuple(sources) if sources is not None else None

    @property
    def train_rows(self) -> int:
        return self._train_rows

    def storage(self) -> np.ndarray:
        return self._images

    def decode(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # (B, H, W, C) → (B, C, H, W): a channels-last view, no copy.
        return rows.permute(0, 3, 1, 2).float() / 255.0


def held_out_count(n: int) -> int:
    """Images held out of ``n``: one in :data:`HOLDOUT_DIVISOR`, at least one."""
    return max(1, n // HOLDOUT_DIVISOR)


def split_order(n: int) -> np.ndarray:
    """The row order of ``n`` images (in file order): a permutation seeded by
    :data:`HOLDOUT_SEED`; its last :func:`held_out_count` entries are the held-out images."""
    return np.random.default_rng(HOLDOUT_SEED).permutation(n)


def _kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise file_error(path, "no such file or folder", ALLOWED_PATH)
    if path.suffix.lower() in (".npy", ".npz"):
        return "array"
    if path.suffix.lower() in EXTENSIONS:
        raise file_error(path, "a single image file", ALLOWED_PATH + " (name their folder)")
    raise file_error(path, f"a file ending {path.suffix or '(no suffix)'}", ALLOWED_PATH)


def check_images(path: str | Path) -> None:
    """Check ``images:PATH`` without decoding every image in full; raises
    :class:`DatasetFileError` with one line naming what is wrong.

    A folder: every image file's header is read, a PNG's chunks checked (CRCs, truncation) and
    a JPEG decoded at 1/8 scale; refuses an empty folder, one without PNG/JPEG files,
    unreadable files (naming up to three, and how many), images under 64 px on the short
    side, greyscale mixed with colour, fewer than 2 images. An array: its header (rank,
    layout, dtype, size) and the first :data:`SAMPLE_IMAGES` (1024) images' values. A set that
    passes can still fail :func:`load_images` if a later array image is out of range or a file
    fails to decode in full.
    """
    path = Path(path)
    if _kind(path) == "folder":
        check_folder(path, image_files(path))
    else:
        check_array(path)


def _fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """What the loaded set depends on: its files' paths, sizes and modification times."""
    files = image_files(path) if _kind(path) == "folder" else [path]
    stats = [(str(p.absolute()), p.stat()) for p in files]
    return tuple((name, stat.st_size, stat.st_mtime_ns) for name, stat in stats)


def load_images(path: str | Path) -> UserImages:
    """``images:PATH`` as a :class:`UserImages` (see the module docstring for the rules).

    Memoised per process (the last set loaded, while its files are unchanged). Raises
    :class:`DatasetFileError` naming what is wrong (see :func:`check_images`, which it runs).
    """
    path = Path(path)
    return _load(path, _fingerprint(path))


@functools.lru_cache(maxsize=1)
def _load(path: Path, fingerprint: tuple) -> UserImages:
    images, sources = read_folder(path) if path.is_dir() else read_array(path)
    order = split_order(len(images))
    images = images[order]
    images.flags.writeable = False
    train_rows = len(images) - held_out_count(len(images))
    return UserImages(images, train_rows, [sources[i] for i in order])
