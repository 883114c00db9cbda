"""Procedural dSprites (Matthey et al., 2017): all 737,280 binary 64×64 sprites, no download.

The factor grid is the official one: colour 1 (white), shape 3 (square, ellipse, heart),
scale 6 (0.5…1.0), orientation 40 (``linspace(0, 2π, 40)``, so 0 and 2π both appear),
posX 32 and posY 32 (``linspace(0, 1, 32)``). Rows follow the official mixed-radix order with
posY fastest. Pixels are our own rendering, not the official bitmaps: each shape is an analytic
region, rendered once per (shape, scale, orientation) by 4×4 supersampling (a pixel is on when
more than half of its samples are inside) and then translated by whole pixels, so position
changes nothing but position. posX moves the sprite centre over columns 16…47, posY over rows
16…47 (row 0 is the top). The square repeats every 90° and the ellipse every 180°, exactly.

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

_PATCH = 32  # sprites are drawn in a 32×32 patch centred on pixel (16, 16)
_CENTRE = 16
_RADIUS = 11.0  # pixels: every shape at scale 1 fits in a circle of this radius
_SUPERSAMPLE = 4
_HEART_SCALE = 0.79  # brings the heart curve inside the unit circle
_HEART_SHIFT = 0.12  # centres it vertically


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether sprite-frame points (u right, v up; unit circle = full size) lie in the shape."""
    if shape == "square":
        half = 1 / np.sqrt(2)
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == "ellipse":
        return u**2 + (v / 0.5) ** 2 <= 1.0
    if shape == "heart":
        x, y = u / _HEART_SCALE, v / _HEART_SCALE + _HEART_SHIFT
        return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")


def render_sprite(shape: str, scale: float, orientation: float) -> np.ndarray:
    """Binary ``[32, 32]`` uint8 patch of one sprite centred on pixel (16, 16).

    ``orientation`` is in radians, counter-clockwise, reduced modulo the shape's symmetry period.
    """
    return render_sprites(shape, np.array([scale]), np.array([orientation]))[0, 0]


def render_sprites(shape: str, scales: np.ndarray, orientations: np.ndarray) -> np.ndarray:
    """Binary patches ``[len(scales), len(orientations), 32, 32]`` uint8 (vectorised)."""
    s = _SUPERSAMPLE
    offsets = (np.arange(_PATCH * s) + 0.5) / s - 0.5 - _CENTRE  # pixel-centre coordinates
    x = offsets[None, :]  # columns, to the right
    y = -offsets[:, None]  # rows point down; y points up
    theta = np.mod(np.asarray(orientations, dtype=np.float64), SYMMETRY_PERIOD[shape])
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    out = np.empty((len(scales), len(theta), _PATCH, _PATCH), dtype=np.uint8)
    for i, scale in enumerate(np.asarray(scales, dtype=np.float64)):
        size = _RADIUS * scale
        # Rotate the sampling grid by -θ, which rotates the shape by +θ.
        u = (x * cos + y * sin) / size
        v = (-x * sin + y * cos) / size
        hits = _inside(shape, u, v).reshape(len(theta), _PATCH, s, _PATCH, s).sum(axis=(2, 4))
        out[i] = hits * 2 > s * s
    return out


@functools.lru_cache(maxsize=1)
def packed_images() -> np.ndarray:
    """All dSprites images bit-packed along rows: ``[737280, 64, 8]`` uint8 (read-only).

    Vectorised: 720 patches are rendered, packed once per horizontal offset, then copied into
    place for each vertical offset. Memoised per process.
    """
    patches = np.stack([render_sprites(name, SCALES, ORIENTATIONS) for name in SHAPES])
    patches = patches.reshape(-1, _PATCH, _PATCH)  # (shape, scale, orientation) flattened
    n_sprites, n_pos = patches.shape[0], len(POSITIONS)
    out = np.zeros((n_sprites, n_pos, n_pos, 64, 8), dtype=np.uint8)
    canvas_rows = np.zeros((n_sprites, _PATCH, 64), dtype=np.uint8)
    for px in range(n_pos):  # sprite centre at column 16 + px
        canvas_rows[:] = 0
        canvas_rows[:, :, px : px + _PATCH] = patches
        packed_rows = np.packbits(canvas_rows, axis=-1)  # (n_sprites, 32, 8)
        for py in range(n_pos):  # sprite centre at row 16 + py
            out[:, px, py, py : py + _PATCH] = packed_rows
    out = out.reshape(-1, 64, 8)
    out.flags.writeable = False
    return out


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
