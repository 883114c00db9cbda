"""Reading a folder of PNG/JPEG files for ``images:PATH``, and the rule every image of that
dataset follows to become 64×64 (see :mod:`betavae.data.images`).

:func:`check_folder` reads headers only (a PNG's chunks are verified, a JPEG is decoded at 1/8
scale to catch truncation); :func:`read_folder` decodes every file. Both name up to
:data:`SHOWN` bad files, and say how many, in a one-line :class:`DatasetFileError`.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from betavae.data.dsprites_npz import DatasetFileError

SIZE = 64
#: File name endings read from a folder (compared in lower case).
EXTENSIONS = (".png", ".jpg", ".jpeg")
#: Files or images a message names before it says "…".
SHOWN = 3
#: What ``images:PATH`` may name (the "allowed" part of a message about the path itself).
ALLOWED_PATH = "a folder of PNG/JPEG images, or a .npy/.npz array of images"

_GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_COLOUR_MODES = {"RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_SIXTEEN_BIT = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
#: What a damaged or unsupported file raises while Pillow reads it.
_UNREADABLE = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


def to_square_64(image: Image.Image) -> Image.Image:
    """The 64×64 rule (:mod:`betavae.data.images`): centre-crop to the short side, then
    Pillow's BOX filter down to 64×64 (sides under 64 are refused before this)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.resize(
        (SIZE, SIZE), Image.Resampling.BOX, box=(left, top, left + side, top + side)
    )


# -- errors, shared with image_array -----------------------------------------------------
def file_error(path: Path, problem: str, allowed: str) -> DatasetFileError:
    return DatasetFileError(f"{path}: {problem}; allowed: {allowed}")


def examples(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f", … ({len(items) - SHOWN} more)" if len(items) > SHOWN else "")


def refuse_too_few(path: Path, n: int) -> None:
    if n < 2:
        raise file_error(path, f"{n} image", "at least 2 images (one is held out for scoring)")


def first_line(err: BaseException) -> str:
    """An exception's message, short enough for a one-line error."""
    return (str(err).split("\n")[0].strip() or type(err).__name__)[:80]


# -- folders -----------------------------------------------------------------------------------
def _walk(folder: Path) -> Iterator[Path]:
    """Every non-hidden file under ``folder`` (hidden folders skipped), in no set order."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith("."):
                yield Path(root, name)


def image_files(folder: Path) -> list[Path]:
    """The folder's PNG/JPEG files sorted by relative path; refuses an empty folder and one
    without images."""
    files = sorted(_walk(folder), key=lambda p: p.relative_to(folder).as_posix())
    images = [p for p in files if p.suffix.lower() in EXTENSIONS]
    if not files:
        raise file_error(
            folder,
            "empty folder (no files in it or its subfolders)",
            "a folder holding PNG or JPEG files, subfolders included",
        )
    if not images:
        others = [p.relative_to(folder).as_posix() for p in files]
        raise file_error(
            folder,
            f"no PNG or JPEG files among its {len(files)} files ({examples(others)})",
            "files ending .png, .jpg or .jpeg",
        )
    return images


def _palette_is_grey(image: Image.Image) -> bool:
    palette = image.palette
    if palette is None:
        return False
    stride = len(palette.mode)
    entries = np.frombuffer(bytes(palette.palette), np.uint8)
    entries = entries[: len(entries) // stride * stride].reshape(-1, stride)
    return bool(np.all(entries[:, 0] == entries[:, 1]) and np.all(entries[:, 1] == entries[:, 2]))


def _channels(image: Image.Image) -> int:
    """1 (greyscale) or 3 (colour) for an opened image, from its header; ValueError when its
    pixel mode is neither."""
    if image.mode in _GREY_MODES:
        return 1
    if image.mode in _COLOUR_MODES:
        return 3
    if image.mode in ("P", "PA"):
        return 1 if _palette_is_grey(image) else 3
    raise ValueError(f"pixel mode {image.mode} is neither greyscale nor colour")


@dataclass(frozen=True)
class _Header:
    file: str
    size: tuple[int, int]  # width, height
    channels: int


def _inspect(path: Path, name: str) -> _Header:
    """An image file's size and channels without a full decode: a PNG's chunks are checked
    (CRCs, truncation), a JPEG is decoded at 1/8 scale (truncation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            header = _Header(name, image.size, _channels(image))
            if image.format == "JPEG":
                image.draft(image.mode, (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
                image.load()
            else:
                image.verify()
    return header


def check_folder(folder: Path, files: list[Path]) -> list[_Header]:
    """The headers of ``files`` (from :func:`image_files`); refuses unreadable files, images
    under 64 px on the short side, greyscale mixed with colour, and fewer than 2 images."""
    headers, broken = [], []
    for path in files:
        name = path.relative_to(folder).as_posix()
        try:
            headers.append(_inspect(path, name))
        except _UNREADABLE as err:
            broken.append(f"{name} ({first_line(err)})")
    _refuse_broken(folder, broken, len(files))
    small = [f"{h.file} ({h.size[0]}×{h.size[1]})" for h in headers if min(h.size) < SIZE]
    if small:
        raise file_error(
            folder,
            f"{len(small)} of {len(files)} images are smaller than {SIZE} px on "
            f"the short side: {examples(small)}",
            f"at least {SIZE}×{SIZE} (images are centre-cropped and downsampled to "
            f"{SIZE}×{SIZE}, never upsampled)",
        )
    grey = [h.file for h in headers if h.channels == 1]
    colour = [h.file for h in headers if h.channels == 3]
    if grey and colour:
        raise file_error(
            folder,
            f"mixed channel counts: {len(grey)} greyscale ({examples(grey)}) "
            f"and {len(colour)} colour ({examples(colour)})",
            "all greyscale or all colour (convert them to one, e.g. all RGB)",
        )
    refuse_too_few(folder, len(headers))
    return headers


def _refuse_broken(folder: Path, broken: list[str], total: int) -> None:
    if broken:
        raise file_error(
            folder,
            f"{len(broken)} of {total} image files are unreadable or corrupt: {examples(broken)}",
            "PNG or JPEG files that open (re-save or remove these)",
        )


def _eight_bit(image: Image.Image, channels: int) -> Image.Image:
    """An opened image as 8-bit ``L`` (channels 1) or ``RGB`` (3), alpha dropped."""
    if image.mode in _SIXTEEN_BIT:  # Pillow's convert("L") would clip, not scale
        wide = np.asarray(image).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))
    return image.convert("L" if channels == 1 else "RGB")


def _decode_file(path: Path, channels: int) -> np.ndarray:
    """One image file → ``[64, 64, C]`` uint8 by the module's rule."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            pixels = np.asarray(to_square_64(_eight_bit(upright, channels)))
    return pixels.reshape(SIZE, SIZE, channels)


def read_folder(folder: Path) -> tuple[np.ndarray, list[str]]:
    """Every image of the folder, ``[N, 64, 64, C]`` uint8 in file order, and each one's path
    relative to the folder; :func:`check_folder` first, then files that fail to decode are
    refused together."""
    files = image_files(folder)
    headers = check_folder(folder, files)
    channels = headers[0].channels
    images = np.empty((len(files), SIZE, SIZE, channels), dtype=np.uint8)
    broken = []
    for i, (path, header) in enumerate(zip(files, headers, strict=True)):
        try:
            images[i] = _decode_file(path, channels)
        except _UNREADABLE as err:
            broken.append(f"{header.file} ({first_line(err)})")
    _refuse_broken(folder, broken, len(files))
    return images, [h.file for h in headers]
