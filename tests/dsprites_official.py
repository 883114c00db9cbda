"""Official dSprites images from tests/fixtures/dsprites_official/ (see its README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FOLDER = Path(__file__).parent / "fixtures" / "dsprites_official"
SQUARE, ELLIPSE, HEART = 0, 1, 2


def gif_frames() -> np.ndarray:
    """The 320 frames of the official ``dsprites.gif``: ``[320, 64, 64]`` uint8 in {0, 1}."""
    from PIL import Image, ImageSequence

    with Image.open(FOLDER / "dsprites.gif") as gif:
        frames = [np.asarray(f.convert("L")) > 127 for f in ImageSequence.Iterator(gif)]
    return np.asarray(frames, dtype=np.uint8)


def gif_classes() -> np.ndarray:
    """``[320, 6]`` factor classes (color, shape, scale, orientation, posX, posY) of the
    frames, from the GIF's walk over the grid (the README says which walk)."""
    walk: list[tuple[int, int, int, int, int]] = []
    up, down = range(6), range(5, -1, -1)
    walk += [(HEART, s, 0, 0, 0) for s in [*up, *down, *up]]
    walk += [(HEART, 5, o, 0, 0) for o in range(40)]
    walk += [(HEART, 5, 0, 0, y) for y in range(32)]
    walk += [(HEART, 5, 0, x, 31) for x in range(32)]
    walk += [(HEART, 5, 0, 31, y) for y in range(31, -1, -1)]
    walk += [(HEART, 5, 0, x, 0) for x in range(31, -1, -1)]
    walk += [(HEART, s, 0, 0, 0) for s in down]
    for shape in (ELLIPSE, SQUARE):
        walk += [(shape, s, 0, 0, 0) for s in [*up, *down, *up]]
        walk += [(shape, 5, o, 0, 0) for o in range(40)]
        walk += [(shape, s, 0, 0, 0) for s in down]
    classes = np.zeros((len(walk), 6), dtype=np.int64)
    classes[:, 1:] = walk
    return classes


def notebook_images() -> dict[str, np.ndarray]:
    """The notebook's decoded images by cell: ``{name: [n, 64, 64] uint8}``."""
    with np.load(FOLDER / "notebook_images.npz") as data:
        return {k: np.unpackbits(data[k], axis=-1) for k in data.files}
