"""Procedural dSprites (Matthey et al., 2017): all 737,280 binary 64×64 sprites, no download.

The factor grid is the official one: colour 1 (white), shape 3 (square, ellipse, heart),
scale 6 (0.5…1.0), orientation 40 (``linspace(0, 2π, 40)``, so 0 and 2π both appear),
posX 32 and posY 32 (``linspace(0, 1, 32)``). Rows follow the official mixed-radix order with
posY fastest.

The pixels are the official ones as far as we can measure: rendered by this geometry, the
258 distinct official images in the official repository's ``dsprites.gif`` (the fixture in
``tests/fixtures/dsprites_official/``) come out identical but for 2 pixels of one heart.

- A pixel is on when its centre lies inside the shape (no anti-aliasing). Pixel
  ``(row, col)`` has its centre at ``(row + 0.5, col + 0.5)``.
- The sprite centre is at column ``16 + 32·posX`` and row ``16 + 32·posY`` (row 0 at the
  top), so consecutive positions are 32/31 px apart and the sprite lands between pixels:
  translation changes the pixel count slightly, as in the official set.
- At scale 1: the square's side is 19.19 px; the ellipse's semi-axes are 12.77 × 7.21 px;
  the heart is the curve ``x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t``
  stretched to 19.19 × 19.15 px, its origin 1.44 px above the sprite centre. Scale multiplies
  every length; orientation turns the shape counter-clockwise about the sprite centre.

Every sample point of every position lies on one grid of spacing 1/31 px around the sprite
centre (the centres step by 32/31 px), so each (shape, scale, orientation) is cut into
horizontal spans once, on that grid, and every position reads its pixel runs from the spans.

Images are stored bit-packed along the row (``[N, 64, 8]`` uint8, 512 bytes an image, 377 MB
for the set) and unpacked on the training device per batch.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from betavae.data.base import GroundTruthDataset

FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
#: The rotational period of each shape: rendering reduces the angle modulo it.
SYMMETRY_PERIOD = {"square": np.pi / 2, "ellipse": np.pi, "heart": 2 * np.pi}

# The geometry, in pixels at scale 1, fitted to the official images (module docstring).
CENTRE_OFFSET, CENTRE_SPAN = 16.0, 32.0  # sprite centre = offset + span · position
SQUARE_HALF_SIDE = 9.597
ELLIPSE_SEMI_AXES = (12.766, 7.213)  # along the sprite's own u (right) and v (up)
HEART_STRETCH = (0.59963, 0.66218)  # the curve's units → px, horizontally and vertically
HEART_LIFT = 1.4365  # the curve's origin sits this far above the sprite centre

_GRID = 31  # sample rows and columns per pixel: every position's pixel centres lie on it
_REACH = 15  # px: every sprite lies within this distance of its centre, rows and columns
_OUTLINE_VERTICES = {"square": 4, "ellipse": 1024, "heart": 4096}
_EMPTY = 4 * _REACH * _GRID  # a span bound (grid units) beyond any pixel: no span


def _outline(shape: str) -> np.ndarray:
    """The shape's outline ``[V, 2]`` (u right, v up; px at scale 1, orientation 0)."""
    n = _OUTLINE_VERTICES[shape]
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    if shape == "square":
        h = SQUARE_HALF_SIDE
        return np.array([[h, h], [-h, h], [-h, -h], [h, -h]])
    if shape == "ellipse":
        a, b = ELLIPSE_SEMI_AXES
        return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)
    if shape == "heart":
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
        sx, sy = HEART_STRETCH
        return np.stack([sx * x, sy * y + HEART_LIFT], axis=1)
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def _outlines(shape: str, scales: np.ndarray, orientations: np.ndarray) -> np.ndarray:
    """Outlines ``[len(scales)·len(orientations), V, 2]`` in image axes (x right, y down)
    relative to the sprite centre, scale-major. Orientation turns counter-clockwise on screen."""
    base = _outline(shape)
    theta = np.mod(np.asarray(orientations, dtype=np.float64), SYMMETRY_PERIOD[shape])
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    u, v = base[None, :, 0], base[None, :, 1]
    x, y_up = u * cos - v * sin, u * sin + v * cos  # (O, V)
    scales = np.asarray(scales, dtype=np.float64)[:, None, None]
    return (scales * np.stack([x, -y_up], axis=-1)[None]).reshape(-1, len(base), 2)


def _grid_spans(outlines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each polygon covers each sample row, on the 1/31 px grid: ``lo, hi``
    ``[n, M + 2, K]`` int16, sample ``g`` of a row inside when ``lo <= g <= hi``.

    Sample row ``m`` (from 1) sits at ``y = (m − 1 − _REACH·31 + 0.5) / 31`` px from the centre;
    rows 0 and M + 1 stay empty and stand for every row beyond the sprite's reach. Each edge
    crosses the rows in ``[y_start, y_end)`` (half-open, so a vertex on a row counts once); a
    row's crossings sorted by x pair up into spans (even-odd rule); unused slots are empty.
    """
    n, v = outlines.shape[:2]
    reach = _REACH * _GRID
    rows = 2 * reach + 2
    start, end = outlines, np.roll(outlines, -1, axis=1)
    y0, y1 = np.minimum(start[..., 1], end[..., 1]), np.maximum(start[..., 1], end[..., 1])
    first = np.ceil(y0 * _GRID - 0.5).astype(np.int64)  # the rows' sample index, centre = 0
    count = (np.ceil(y1 * _GRID - 0.5).astype(np.int64) - first).ravel()
    edge = np.repeat(np.arange(n * v), count)
    m = first.ravel()[edge] + np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    y = (m + 0.5) / _GRID
    (xa, ya), (xb, yb) = start.reshape(-1, 2)[edge].T, end.reshape(-1, 2)[edge].T
    x = xa + (y - ya) * (xb - xa) / (yb - ya)
    row = edge // v * rows + (m + reach + 1)
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row)  # position within the row
    k = int(rank.max()) // 2 + 1 if len(rank) else 1
    lo = np.full((n * rows, k), _EMPTY, dtype=np.int16)
    hi = np.full((n * rows, k), -_EMPTY, dtype=np.int16)
    left, right = rank % 2 == 0, rank % 2 == 1
    lo[row[left], rank[left] // 2] = np.ceil(x[left] * _GRID - 0.5)
    hi[row[right], rank[right] // 2] = np.floor(x[right] * _GRID - 0.5)
    return lo.reshape(n, rows, k), hi.reshape(n, rows, k)


#: ``_HEAD[c]``: a row of 64 pixels with columns c…63 on, as a uint64 whose bytes in memory
#: are the row's ``np.packbits`` bytes (column 0 = most significant bit of the first byte).
_HEAD = np.array(
    [np.uint64(0xFFFF_FFFF_FFFF_FFFF) >> np.uint64(c) for c in range(64)] + [0], dtype=">u8"
).view(np.uint64)


def _grid_index(position: np.ndarray) -> np.ndarray:
    """Offset of the sample grid for a sprite at ``position``: the grid index of pixel
    centre ``c`` (rows or columns) is ``31·c + offset``, i.e. ``c + 0.5 − centre`` in 1/31 px.

    Exact for the official positions k/31, where the centres step by 32/31 px.
    """
    centre = CENTRE_OFFSET + CENTRE_SPAN * np.asarray(position, dtype=np.float64)
    return np.rint((0.5 - centre) * _GRID - 0.5).astype(np.int64)


def render_rows(
    outlines: np.ndarray, pos_x: np.ndarray, pos_y: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Images of polygons (``_outlines``) at every (posX, posY) pair of the given positions:
    ``[n, len(pos_x), len(pos_y), 64]`` uint64 rows, each one row's ``np.packbits`` bytes.

    Written into ``out`` (zeros or not) when given."""
    lo, hi = _grid_spans(outlines)
    # Pixel row r of a sprite at posY uses sample row 31·r + offset; only the 32 rows around
    # the centre can hold the sprite.
    gy = _grid_index(pos_y)
    top = np.clip(np.rint(CENTRE_OFFSET + CENTRE_SPAN * np.asarray(pos_y)) - 16, 0, 32)
    r = top.astype(np.int64)[:, None] + np.arange(32)  # (y, 32)
    m = np.clip(_GRID * r + gy[:, None] + _REACH * _GRID + 1, 0, lo.shape[1] - 1)
    lo_y, hi_y = lo[:, m], hi[:, m]  # (n, y, 32, K)
    # Column c is on when lo <= 31·c + offset_x <= hi.
    gx = _grid_index(pos_x).astype(np.int16)[None, :, None, None, None]
    first = -((gx - lo_y[:, None]) // _GRID)  # ceil((lo - gx) / 31)
    stop = (hi_y[:, None] - gx) // _GRID + 1
    bits = _HEAD[np.clip(first, 0, 64)] & ~_HEAD[np.clip(stop, 0, 64)]
    window = np.bitwise_or.reduce(bits, axis=-1)  # (n, x, y, 32)
    if out is None:
        out = np.empty((*window.shape[:3], 64), dtype=np.uint64)
    for j, t in enumerate(top.astype(np.int64)):
        out[:, :, j, :t] = 0
        out[:, :, j, t : t + 32] = window[:, :, j]
        out[:, :, j, t + 32 :] = 0
    return out


def render_sprite(
    shape: str, scale: float, orientation: float, pos_x: float = 0.5, pos_y: float = 0.5
) -> np.ndarray:
    """One binary ``[64, 64]`` uint8 image of a sprite; ``orientation`` in radians,
    counter-clockwise, reduced modulo the shape's symmetry period; positions in [0, 1]."""
    outline = _outlines(shape, np.array([scale]), np.array([orientation]))
    rows = render_rows(outline, np.array([pos_x]), np.array([pos_y]))[0, 0, 0]
    return np.unpackbits(rows.view(np.uint8)).reshape(64, 64)


@functools.lru_cache(maxsize=1)
def packed_images() -> np.ndarray:
    """All dSprites images bit-packed along rows: ``[737280, 64, 8]`` uint8 (read-only).

    Vectorised per (shape, scale): the spans of its 40 orientations, then every position's
    rows at once. Memoised per process.
    """
    out = np.empty((len(SHAPES), len(SCALES), len(ORIENTATIONS), 32, 32, 64), dtype=np.uint64)
    for i, shape in enumerate(SHAPES):
        for j, scale in enumerate(SCALES):
            outlines = _outlines(shape, np.array([scale]), ORIENTATIONS)
            render_rows(outlines, POSITIONS, POSITIONS, out=out[i, j])
    packed = out.view(np.uint8).reshape(-1, 64, 8)
    packed.flags.writeable = False
    return packed


def unpack_bits(rows: torch.Tensor) -> torch.Tensor:
    """Bit-packed rows ``[B, 64, 8]`` uint8 → ``[B, 1, 64, 64]`` uint8 in {0, 1}."""
    shifts = torch.arange(7, -1, -1, device=rows.device, dtype=torch.uint8)
    bits = (rows.unsqueeze(-1) >> shifts) & 1  # (B, 64, 8, 8), most significant bit first
    return bits.reshape(rows.shape[0], 1, 64, 64)


class DSprites(GroundTruthDataset):
    """Binary dSprites, procedurally generated (or loaded from the official file)."""

    name = "dsprites"
    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    num_channels = 1
    likelihood = "bernoulli"

    def __init__(self, packed: np.ndarray | None = None) -> None:
        self._packed = packed_images() if packed is None else packed

    def storage(self) -> np.ndarray:
        return self._packed

    def decode(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return unpack_bits(rows).float()


class NoisyDSprites(DSprites):
    """dSprites on 3 channels with uniform background noise U(0, 1), clipped to 1.

    The noise is drawn afresh for every observation (it is not a factor).
    """

    name = "dsprites-noisy"
    num_channels = 3
    deterministic = False

    def decode(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        sprite = unpack_bits(rows).float().expand(-1, 3, -1, -1)
        noise = torch.rand(sprite.shape, generator=generator, device=rows.device)
        return torch.clamp(sprite + noise, max=1.0)


class ColorDSprites(DSprites):
    """dSprites on 3 channels with the sprite in a random colour drawn from U(0.5, 1)³.

    The colour is drawn afresh for every observation (it is not a factor).
    """

    name = "dsprites-color"
    num_channels = 3
    deterministic = False

    def decode(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        sprite = unpack_bits(rows).float()
        colour = 0.5 + 0.5 * torch.rand(
            (rows.shape[0], 3, 1, 1), generator=generator, device=rows.device
        )
        return sprite * colour
