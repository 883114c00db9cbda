from __future__ import annotations

import numpy as np
import pytest
import torch

from betavae.data import (
    ColorDSprites,
    DSprites,
    NoisyDSprites,
    check_dataset_spec,
    load_dataset,
    mixed_radix_bases,
)
from betavae.data.dsprites import SHAPES, packed_images, render_sprite


@pytest.fixture(scope="module")
def dsprites() -> DSprites:
    return DSprites()


def test_factor_grid_is_the_official_one(dsprites):
    assert dsprites.factor_names == ("color", "shape", "scale", "orientation", "posX", "posY")
    assert dsprites.factor_sizes == (1, 3, 6, 40, 32, 32)
    assert len(dsprites) == 737_280
    assert dsprites.storage().shape == (737_280, 64, 8)
    assert list(mixed_radix_bases(dsprites.factor_sizes)) == [737280, 245760, 40960, 1024, 32, 1]


def test_index_and_classes_round_trip_with_posy_fastest(dsprites, rng):
    index = rng.integers(0, len(dsprites), size=5000)
    classes = dsprites.index_to_classes(index)
    np.testing.assert_array_equal(dsprites.classes_to_index(classes), index)
    np.testing.assert_array_equal(
        dsprites.index_to_classes(np.array([1, 32])), [[0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0]]
    )


def test_sample_factors_covers_each_factor_within_range(dsprites, rng):
    factors = dsprites.sample_factors(20_000, rng)
    assert factors.shape == (20_000, 6) and factors.dtype == np.int64
    for j, size in enumerate(dsprites.factor_sizes):
        assert set(np.unique(factors[:, j])) == set(range(size))


def test_out_of_range_classes_are_rejected(dsprites):
    with pytest.raises(ValueError, match="out of range"):
        dsprites.classes_to_index(np.array([[0, 3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"shape \[n, 6\]"):
        dsprites.classes_to_index(np.zeros((2, 5), dtype=int))


def test_images_are_binary_nonempty_and_inside_the_canvas(dsprites, rng):
    classes = dsprites.sample_factors(2000, rng)
    images = dsprites.images(classes)
    assert images.shape == (2000, 1, 64, 64) and images.dtype == np.float32
    assert set(np.unique(images)) == {0.0, 1.0}
    assert images.sum(axis=(1, 2, 3)).min() > 10
    # Every factor changes the image: scale grows the area, posX/posY translate it.
    small = dsprites.images(np.array([[0, 0, 0, 0, 10, 10]]))
    big = dsprites.images(np.array([[0, 0, 5, 0, 10, 10]]))
    assert big.sum() > 2.5 * small.sum()


def _centroid(image: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(image)
    return np.array([cols.mean(), rows.mean()])


def test_positions_move_the_sprite_centre_by_32_31_of_a_pixel(dsprites):
    """Centres at 16 + 32·k/31 px (row 0 at the top): the sprite lands between pixels, as in
    the official set, so a step moves the centroid by 32/31 px on average."""
    ellipse = np.array([[0, 1, 5, 0, k, k] for k in range(32)])
    centres = np.array([_centroid(img[0]) for img in dsprites.images(ellipse)])
    np.testing.assert_allclose(centres[0], [15.5, 15.5], atol=0.01)
    np.testing.assert_allclose(centres[-1], [47.5, 47.5], atol=0.01)
    np.testing.assert_allclose(np.diff(centres, axis=0).mean(axis=0), 32 / 31, atol=1e-3)


def test_areas_at_scale_one_are_the_official_ones(dsprites):
    """Pixel counts averaged over orientations at scale 1 (official: square ≈ 367, ellipse
    ≈ 290, heart ≈ 225) and over the whole set (mean pixel ≈ 0.0425)."""
    for shape, expected in enumerate((367, 290, 225)):
        classes = np.array([[0, shape, 5, o, 16, 16] for o in range(40)])
        area = dsprites.images(classes).sum(axis=(1, 2, 3)).mean()
        assert abs(area / expected - 1) < 0.01, (SHAPES[shape], area)
    words = packed_images().reshape(len(dsprites), -1).view(np.uint64)
    mean_pixel = np.bitwise_count(words).sum(dtype=np.int64) / (len(dsprites) * 4096)
    assert 0.042 < mean_pixel < 0.043


def test_generation_is_deterministic():
    a = render_sprite("heart", 0.7, 1.3, 0.2, 0.9)
    b = render_sprite("heart", 0.7, 1.3, 0.2, 0.9)
    np.testing.assert_array_equal(a, b)


def test_render_sprite_is_the_image_in_the_set(dsprites):
    classes = np.array([[0, 2, 3, 7, 4, 9]])
    expected = dsprites.images(classes)[0, 0]
    np.testing.assert_array_equal(
        render_sprite("heart", 0.8, 7 * 2 * np.pi / 39, 4 / 31, 9 / 31), expected
    )


@pytest.mark.parametrize("theta", [0.1, 0.7, 1.3, 2.9])
def test_rotational_symmetries(theta):
    square = [render_sprite("square", 1.0, theta + k * np.pi / 2) for k in range(4)]
    for img in square[1:]:
        np.testing.assert_array_equal(img, square[0])
    np.testing.assert_array_equal(
        render_sprite("ellipse", 0.8, theta), render_sprite("ellipse", 0.8, theta + np.pi)
    )
    assert not np.array_equal(
        render_sprite("ellipse", 0.8, theta), render_sprite("ellipse", 0.8, theta + np.pi / 2)
    )
    assert not np.array_equal(
        render_sprite("heart", 1.0, theta), render_sprite("heart", 1.0, theta + np.pi)
    )


def test_orientation_zero_and_two_pi_are_the_same_image(dsprites):
    for shape in range(3):
        first = dsprites.images(np.array([[0, shape, 4, 0, 16, 16]]))
        last = dsprites.images(np.array([[0, shape, 4, 39, 16, 16]]))
        np.testing.assert_array_equal(first, last)


def test_shapes_differ(dsprites):
    imgs = dsprites.images(np.array([[0, s, 5, 0, 16, 16] for s in range(len(SHAPES))]))
    assert not np.array_equal(imgs[0], imgs[1])
    assert not np.array_equal(imgs[1], imgs[2])


def test_noisy_variant_keeps_the_sprite_and_adds_background_noise(dsprites):
    classes = np.array([[0, 1, 5, 3, 10, 20]] * 4)
    sprite = dsprites.images(classes)
    noisy = NoisyDSprites().images(classes, np.random.default_rng(1))
    assert noisy.shape == (4, 3, 64, 64)
    mask = np.broadcast_to(sprite == 1, noisy.shape)
    assert np.all(noisy[mask] == 1.0)
    background = noisy[~mask]
    assert background.min() >= 0.0 and background.max() < 1.0
    assert abs(background.mean() - 0.5) < 0.02


def test_color_variant_draws_one_colour_per_image(dsprites):
    classes = np.array([[0, 0, 5, 3, 10, 20]] * 50)
    sprite = dsprites.images(classes)[:, 0] == 1
    colour = ColorDSprites().images(classes, np.random.default_rng(1))
    assert colour.shape == (50, 3, 64, 64)
    on = colour.transpose(0, 2, 3, 1)[sprite].reshape(50, -1, 3)
    assert np.all(on == on[:, :1, :])  # one colour over the whole sprite
    assert on.min() >= 0.5 and on.max() <= 1.0
    assert np.all(colour.transpose(0, 2, 3, 1)[~sprite] == 0)
    assert len(np.unique(on[:, 0, 0])) == 50


def test_decode_runs_on_a_gathered_batch_of_storage_rows(dsprites):
    rows = torch.from_numpy(dsprites.storage()[[0, 100, 5000]])
    images = dsprites.decode(rows)
    assert images.shape == (3, 1, 64, 64) and images.dtype == torch.float32


@pytest.mark.parametrize(
    "spec",
    ["dsprites", "dsprites-noisy", "dsprites-color", "dsprites-npz:/x.npz", "shapes3d:/x.h5",
     "images:/x"],
)  # fmt: skip
def test_known_specs_are_accepted(spec):
    assert check_dataset_spec(spec) is None  # raises ValueError on an unknown spec


@pytest.mark.parametrize("spec", ["", "mnist", "dsprites-npz", "shapes3d:", "dsprites:x"])
def test_unknown_specs_are_rejected(spec):
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_dataset(spec)


def test_mean_image_and_the_ignore_the_input_level(dsprites):
    from betavae.data.stats import ignore_input_nll, mean_image

    class Generic(DSprites):  # decoded image by image, not by counting packed bits
        pass

    subset = packed_images()[::97]
    np.testing.assert_allclose(
        mean_image(DSprites(subset)), mean_image(Generic(subset)), rtol=0, atol=1e-12
    )
    assert ignore_input_nll(dsprites) == pytest.approx(565.4, abs=0.05)
