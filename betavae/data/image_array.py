"""Reading a ``.npy``/``.npz`` array of images for ``images:PATH`` (see
:mod:`betavae.data.images` for what is accepted). Never unpickles.

:func:`check_array` reads the header and the first :data:`SAMPLE_IMAGES` images;
:func:`read_array` reads everything, checks every value and applies the 64×64 rule.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from betavae.data.dsprites_npz import DatasetFileError
from betavae.data.image_folder import (
    ALLOWED_PATH,
    SIZE,
    examples,
    file_error,
    first_line,
    refuse_too_few,
    to_square_64,
)

#: Images of an array whose pixels :func:`check_array` reads (the first ones).
SAMPLE_IMAGES = 1024
_ALLOWED_DTYPE = "uint8 (0–255), bool, or float in [0, 1]"


@dataclass(frozen=True)
class _Array:
    """An image array's header and where its images and channels lie."""

    label: str  # "the array", or "array 'KEY'" in an npz
    source: str  # what names row i: "SOURCE[i]", the npy's file name or the npz key
    shape: tuple[int, ...]
    dtype: np.dtype
    channel_axis: int | None  # 1 or 3 for rank 4, None for [N, H, W]

    @property
    def height_width(self) -> tuple[int, int]:
        if self.channel_axis == 1:
            return self.shape[2], self.shape[3]
        return self.shape[1], self.shape[2]

    @property
    def channels(self) -> int:
        return 1 if self.channel_axis is None else self.shape[self.channel_axis]


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype, bool]:
    version = np.lib.format.read_magic(f)
    read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
        version, np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = read(f)
    return tuple(shape), dtype, fortran


def _npz_key(path: Path, keys: list[str]) -> str:
    if len(keys) == 1:
        return keys[0]
    for key in ("images", "imgs"):
        if key in keys:
            return key
    raise file_error(
        path,
        f"{len(keys)} arrays ({examples(sorted(keys))}) and none named 'images' or 'imgs'",
        "one array, or the images under the key 'images' or 'imgs'",
    )


def _describe(path: Path, key: str | None, shape: tuple[int, ...], dtype: np.dtype) -> _Array:
    """Check an array header's dtype, rank, layout and size; where its channels lie."""
    label = "the array" if key is None else f"array {key!r}"
    if not (dtype == np.uint8 or dtype == np.bool_ or dtype.kind == "f"):
        raise file_error(path, f"{label} has dtype {dtype}", _ALLOWED_DTYPE)
    layouts = "[N, H, W], [N, H, W, C] or [N, C, H, W] with C in 1–4 and H, W >= 64"
    if len(shape) == 3:
        axis = None
    elif len(shape) == 4 and 1 <= shape[3] <= 4:
        axis = 3
    elif len(shape) == 4 and 1 <= shape[1] <= 4:
        axis = 1
    else:
        raise file_error(path, f"{label} has shape {shape}", layouts)
    array = _Array(label, key or path.name, shape, dtype, axis)
    if min(array.height_width) < SIZE:
        raise file_error(
            path,
            f"{label} has shape {shape}: images of {array.height_width[0]}×"
            f"{array.height_width[1]} px",
            f"{layouts} (images are centre-cropped and "
            f"downsampled to {SIZE}×{SIZE}, never upsampled)",
        )
    refuse_too_few(path, shape[0])
    return array


def _check_values(path: Path, label: str, values: np.ndarray) -> None:
    """Refuse floats outside [0, 1] (NaN included) and uint8 0/1 images (binary images stored
    as 0 and 1, which as 0–255 intensities would be black)."""
    if values.size == 0:
        return
    if values.dtype.kind == "f":
        low, high = float(np.min(values)), float(np.max(values))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise file_error(
                path, f"{label} holds NaN or infinite values", "float values in [0, 1]"
            )
        if low < 0 or high > 1:
            hint = " (divide by 255)" if high > 1 else ""
            raise file_error(
                path,
                f"{label} has values in [{low:g}, {high:g}]",
                f"float values in [0, 1]{hint}, or uint8 0–255",
            )
    elif values.dtype == np.uint8 and int(values.max()) == 1:
        raise file_error(
            path,
            f"{label} is uint8 with values 0 and 1 only (binary images?)",
            "uint8 0–255; pass binary images as bool or float 0/1",
        )


def _open_npz_member(path: Path) -> tuple[zipfile.ZipFile, str]:
    zf = zipfile.ZipFile(path)
    keys = [n.removesuffix(".npy") for n in zf.namelist() if n.endswith(".npy")]
    if not keys:
        zf.close()
        raise file_error(path, "no arrays in the npz", "an npz holding an array of images")
    return zf, _npz_key(path, keys)


def check_array(path: Path) -> _Array:
    """Header, layout and the first :data:`SAMPLE_IMAGES` images' values of an array file."""
    try:
        if path.suffix.lower() == ".npy":
            with path.open("rb") as f:
                shape, dtype, _ = _npy_header(f)
            described = _describe(path, None, shape, dtype)
            array = np.load(path, mmap_mode="r", allow_pickle=False)
            _check_values(path, described.label, np.asarray(array[:SAMPLE_IMAGES]))
            return described
        zf, key = _open_npz_member(path)
        with zf, zf.open(f"{key}.npy") as f:
            shape, dtype, fortran = _npy_header(f)
            described = _describe(path, key, shape, dtype)
            if not fortran:
                count = min(SAMPLE_IMAGES, shape[0])
                per_image = int(np.prod(shape[1:])) * dtype.itemsize
                sample = np.frombuffer(f.read(count * per_image), dtype)
                _check_values(path, described.label, sample)
            return described
    except DatasetFileError:
        raise
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err


#: What a damaged or truncated ``.npy``/``.npz`` raises while it is read.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)


def _unreadable(path: Path, err: BaseException) -> DatasetFileError:
    return file_error(
        path, f"unreadable or truncated {path.suffix.lower()} ({first_line(err)})", ALLOWED_PATH
    )


def _open_array(path: Path, described: _Array) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        # Open the file ourselves: np.load leaks its handle when the zip is corrupt.
        with path.open("rb") as fh, np.load(fh, allow_pickle=False) as npz:
            return npz[described.source]
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from err


def read_array(path: Path) -> tuple[np.ndarray, list[str]]:
    """Every image of the array file, ``[N, 64, 64, C]`` uint8 in the file's order, and each
    one's name (``SOURCE[i]``); :func:`check_array` first, then every value is checked."""
    described = check_array(path)
    array = _open_array(path, described)
    n, channels = described.shape[0], described.channels
    kept = 1 if channels <= 2 else 3  # alpha (LA, RGBA) is dropped
    images = np.empty((n, SIZE, SIZE, kept), dtype=np.uint8)
    rows = max(1, 2**24 // int(np.prod(described.shape[1:])))  # ≤ 16M values at a time
    for start in range(0, n, rows):
        chunk = np.asarray(array[start : start + rows])
        _check_values(path, described.label, chunk)
        images[start : start + len(chunk)] = _to_64(_channels_last(chunk, described)[..., :kept])
    return images, [f"{described.source}[{i}]" for i in range(n)]


def _channels_last(chunk: np.ndarray, described: _Array) -> np.ndarray:
    """``[n, ...]`` in the array's layout → ``[n, H, W, C]`` uint8 (0–255)."""
    if described.channel_axis is None:
        chunk = chunk[..., None]
    elif described.channel_axis == 1:
        chunk = np.moveaxis(chunk, 1, 3)
    if chunk.dtype == np.bool_:
        return chunk.astype(np.uint8) * 255
    if chunk.dtype.kind == "f":
        return np.rint(chunk * 255).astype(np.uint8)
    return chunk


def _to_64(chunk: np.ndarray) -> np.ndarray:
    """``[n, H, W, C]`` uint8 → ``[n, 64, 64, C]`` by the module's rule."""
    if chunk.shape[1:3] == (SIZE, SIZE):
        return chunk
    out = np.empty((len(chunk), SIZE, SIZE, chunk.shape[3]), dtype=np.uint8)
    for i, pixels in enumerate(chunk):
        image = Image.fromarray(
            np.ascontiguousarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
        )
        out[i] = np.asarray(to_square_64(image)).reshape(out.shape[1:])
    return out
