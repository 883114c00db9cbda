"""``images:PATH``: the user's own images, without factors. The 64×64 rule, the held-out split,
every refused input, training on the training rows and scoring the held-out ones, metrics and
the sweep's checks refusing what needs factors."""

from __future__ import annotations

import dataclasses
import re
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from betavae.config import TrainConfig
from betavae.data import (
    DatasetFileError,
    UserImages,
    check_dataset_file,
    check_images,
    load_dataset,
    load_images,
)
from betavae.data.images import held_out_count
from betavae.training import Trainer


def _pixels(rng: np.random.Generator, channels: int, height: int = 80, width: int = 100):
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _folder(path, n=40, channels=1, seed=0, jpeg_every=0):
    """``n`` PNGs of 100×80 px (every ``jpeg_every``-th a JPEG), a third in a subfolder, plus
    files the loader must skip: a note, a hidden broken "image", a hidden folder."""
    rng = np.random.default_rng(seed)
    (path / "sub").mkdir(parents=True)
    (path / ".cache").mkdir()
    for i in range(n):
        suffix = "jpg" if jpeg_every and i % jpeg_every == 0 else "png"
        where = path / "sub" if i % 3 == 0 else path
        Image.fromarray(_pixels(rng, channels)).save(where / f"img{i:02d}.{suffix}")
    (path / "notes.txt").write_text("not an image")
    (path / ".hidden.png").write_bytes(b"resource fork, not a PNG")
    (path / ".cache" / "thumb.png").write_bytes(b"not a PNG either")
    return path


def _area_rule(image: np.ndarray) -> np.ndarray:
    """The documented rule, written independently: centre-crop to the short side S, then each
    source pixel counts once in the output pixel whose footprint (S/64 px, open at its start,
    closed at its end) holds its centre. Pillow rounds after each axis: ±1 of this."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top : top + side, left : left + side].astype(np.float64)
    cell = np.ceil((np.arange(side) + 0.5) * 64 / side).astype(int) - 1
    sums = np.zeros((64, 64, *crop.shape[2:]))
    counts = np.zeros((64, 64))
    np.add.at(sums, (cell[:, None], cell[None, :]), crop)
    np.add.at(counts, (cell[:, None], cell[None, :]), 1)
    return sums / counts.reshape(counts.shape + (1,) * (crop.ndim - 2))


# -- loading ----------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 3])
def test_a_folder_loads_as_uint8_64_by_64_with_subfolders_and_only_images(tmp_path, channels):
    folder = _folder(tmp_path / "imgs", channels=channels, jpeg_every=5)
    check_images(folder)
    ds = load_dataset(f"images:{folder}")
    assert isinstance(ds, UserImages) and ds.name == "images" and not ds.has_factors
    assert ds.storage().shape == (40, 64, 64, channels) and ds.storage().dtype == np.uint8
    assert not ds.storage().flags.writeable
    assert ds.num_channels == channels and ds.observation_shape == (channels, 64, 64)
    assert len(ds) == 40 and ds.likelihood == "bernoulli" and ds.deterministic
    assert sorted(ds.sources) == sorted(
        [f"{'sub/' if i % 3 == 0 else ''}img{i:02d}.{'jpg' if i % 5 == 0 else 'png'}"
         for i in range(40)]
    )  # fmt: skip
    decoded = ds.decode(torch.from_numpy(ds.storage()[:2].copy()))
    assert decoded.shape == (2, channels, 64, 64) and decoded.dtype == torch.float32
    assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1


def test_the_64_pixel_rule_crops_the_centre_square_and_averages_by_area(tmp_path):
    folder = tmp_path / "rule"
    folder.mkdir()
    wide = np.full((80, 100), 255, np.uint8)  # 100 wide: columns 0–9 and 90–99 are cut
    wide[:, 10:50] = 0
    wide[:, 50:90] = 200  # the crop's right half: output columns 32–63
    tall = np.zeros((100, 80), np.uint8)  # 100 high: rows 0–9 and 90–99 are cut
    tall[10:50] = 40
    tall[50:90] = 160
    rng = np.random.default_rng(3)
    noise = _pixels(rng, 1, height=150, width=117)  # odd margins, a non-integer scale
    for name, image in (("a_wide", wide), ("b_tall", tall), ("c_noise", noise)):
        Image.fromarray(image).save(folder / f"{name}.png")
    ds = load_images(folder)
    rows = {source: ds.storage()[i, ..., 0] for i, source in enumerate(ds.sources)}
    expected_wide = np.zeros((64, 64), np.uint8)
    expected_wide[:, 32:] = 200
    np.testing.assert_array_equal(rows["a_wide.png"], expected_wide)
    expected_tall = np.full((64, 64), 40, np.uint8)
    expected_tall[32:] = 160
    np.testing.assert_array_equal(rows["b_tall.png"], expected_tall)
    np.testing.assert_allclose(rows["c_noise.png"], _area_rule(noise), atol=1)


def test_modes_become_one_grey_or_three_colour_channels(tmp_path):
    rng = np.random.default_rng(4)
    grey, colour = tmp_path / "grey", tmp_path / "colour"
    grey.mkdir()
    colour.mkdir()
    ramp = np.tile(np.arange(64, dtype=np.uint16) * 1024 + 1023, (64, 1))  # 16-bit, to 65535
    Image.fromarray(ramp).save(grey / "sixteen.png")
    Image.fromarray(_pixels(rng, 1, 64, 64)).convert("P").save(grey / "grey_palette.png")
    Image.fromarray(_pixels(rng, 1, 64, 64)).convert("LA").save(grey / "alpha.png")
    Image.fromarray(_pixels(rng, 1, 64, 64) > 127).save(grey / "binary.png")
    rgba = _pixels(rng, 4, 64, 64)
    Image.fromarray(rgba).save(colour / "rgba.png")
    Image.fromarray(_pixels(rng, 3, 64, 64)).quantize(16).save(colour / "palette.png")
    Image.fromarray(_pixels(rng, 3, 64, 64)).convert("CMYK").save(colour / "cmyk.jpg")

    greys = load_images(grey)
    assert greys.num_channels == 1
    sixteen = greys.storage()[greys.sources.index("sixteen.png"), ..., 0]
    np.testing.assert_array_equal(sixteen[0], np.rint(ramp[0] / 257).astype(np.uint8))
    colours = load_images(colour)
    assert colours.num_channels == 3
    no_alpha = colours.storage()[colours.sources.index("rgba.png")]
    np.testing.assert_array_equal(no_alpha, rgba[..., :3])  # alpha dropped, not composited


@pytest.mark.parametrize(
    ("layout", "shape", "dtype"),
    [
        ("N,H,W", (12, 64, 64), np.uint8),
        ("N,H,W,C", (12, 70, 90, 3), np.float32),
        ("N,C,H,W", (12, 3, 64, 64), np.float64),
        ("N,H,W,C", (12, 64, 64, 4), np.uint8),  # RGBA: alpha dropped
        ("N,H,W", (12, 64, 64), np.bool_),
    ],
)
def test_arrays_load_in_each_layout(tmp_path, layout, shape, dtype):
    rng = np.random.default_rng(5)
    if dtype == np.bool_:
        array = rng.random(shape) > 0.5
    elif dtype == np.uint8:
        array = rng.integers(0, 256, size=shape, dtype=np.uint8)
    else:
        array = rng.random(shape).astype(dtype)
    np.save(tmp_path / "a.npy", array)
    ds = load_images(tmp_path / "a.npy")
    hwc = array[..., None] if layout == "N,H,W" else array
    hwc = np.moveaxis(hwc, 1, 3) if layout == "N,C,H,W" else hwc
    hwc = hwc[..., :3]
    as_bytes = np.rint(hwc.astype(np.float64) * (1 if dtype == np.uint8 else 255))
    order = [int(s.removeprefix("a.npy[").removesuffix("]")) for s in ds.sources]
    assert ds.storage().shape == (12, 64, 64, hwc.shape[-1])
    if hwc.shape[1:3] == (64, 64):
        np.testing.assert_array_equal(ds.storage(), as_bytes[order].astype(np.uint8))
    else:
        expected = np.stack([_area_rule(as_bytes[i]) for i in order])
        np.testing.assert_allclose(ds.storage(), expected, atol=1)


def test_an_npz_holds_one_array_or_its_images_under_images_or_imgs(tmp_path):
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, size=(5, 64, 64), dtype=np.uint8)
    np.savez(tmp_path / "one.npz", anything=images)
    np.savez(tmp_path / "keyed.npz", imgs=images, labels=np.arange(5))
    np.savez_compressed(tmp_path / "both.npz", images=images, imgs=images[:, ::-1], x=images)
    for name in ("one", "keyed", "both"):
        ds = load_images(tmp_path / f"{name}.npz")
        order = [int(s.split("[")[1].rstrip("]")) for s in ds.sources]
        np.testing.assert_array_equal(ds.storage()[..., 0], images[order])


# -- the held-out split, the memo, the digest -------------------------------------------------
@pytest.mark.parametrize(("n", "held_out"), [(2, 1), (9, 1), (19, 1), (20, 2), (40, 4), (105, 10)])
def test_a_tenth_is_held_out_and_at_least_one(n, held_out):
    assert held_out_count(n) == held_out


def test_the_split_is_disjoint_and_the_same_on_every_load(tmp_path):
    folder = _folder(tmp_path / "a")
    ds = load_images(folder)
    train, held = ds.sources[: ds.train_rows], ds.sources[ds.train_rows :]
    assert (len(train), len(held)) == (36, 4) and not set(train) & set(held)
    assert sorted(train + held) == sorted(ds.sources) and len(set(ds.sources)) == 40
    assert load_images(folder) is ds  # memoised
    digest = ds.content_digest()
    copy = shutil.copytree(folder, tmp_path / "elsewhere" / "b")  # a new path: loaded afresh
    again = load_images(copy)
    assert again is not ds and again.sources == ds.sources and again.train_rows == 36
    np.testing.assert_array_equal(again.storage(), ds.storage())
    assert again.content_digest() == digest
    Image.fromarray(np.zeros((80, 100), np.uint8)).save(copy / "img01.png")  # one changed file
    changed = load_images(copy)
    assert changed is not again and changed.content_digest() != digest


# -- what is refused --------------------------------------------------------------------------
def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _bad_folder(kind, root):
    """A folder (or file) with one defect; returns its path."""
    rng = np.random.default_rng(7)
    if kind == "missing":
        return root / "no" / "such"
    folder = root / kind
    folder.mkdir()
    if kind == "empty":
        return folder
    if kind == "no images":
        (folder / "a.txt").write_text("x")
        (folder / "b.gif").write_bytes(b"GIF89a")
        return folder
    _folder(folder / "good", n=6, channels=3 if kind == "mixed" else 1)
    if kind == "corrupt":
        (folder / "good" / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        (folder / "zero.jpg").write_bytes(b"")
    elif kind == "truncated png":
        Image.fromarray(_pixels(rng, 1)).save(folder / "cut.png")
        _truncate(folder / "cut.png")
    elif kind == "truncated jpeg":
        Image.fromarray(_pixels(rng, 1, 256, 256)).save(folder / "cut.jpg", quality=95)
        _truncate(folder / "cut.jpg", 0.6)
    elif kind == "mixed":
        for i in range(2):
            Image.fromarray(_pixels(rng, 1)).save(folder / f"grey{i}.png")
    elif kind == "too small":
        Image.fromarray(_pixels(rng, 1, 63, 200)).save(folder / "thin.png")
    return folder


BAD_FOLDERS = [
    ("missing", r"no such file or folder; allowed: a folder of PNG/JPEG images"),
    ("empty", r"empty folder \(no files in it or its subfolders\)"),
    ("no images", r"no PNG or JPEG files among its 2 files \(a\.txt, b\.gif\)"),
    ("corrupt", r"2 of 8 image files are unreadable or corrupt: good/sub/broken\.png \(.*"
                r", zero\.jpg \("),
    ("truncated png", r"1 of 7 image files are unreadable or corrupt: cut\.png \("),
    ("truncated jpeg", r"1 of 7 image files are unreadable or corrupt: cut\.jpg \("),
    ("mixed", r"mixed channel counts: 2 greyscale \(grey0\.png, grey1\.png\) and 6 colour "
              r"\(good/img01\.png, good/img02\.png, good/img04\.png, … \(3 more\)\)"),
    ("too small", r"1 of 7 images are smaller than 64 px on the short side: thin\.png \(200×63\)"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "message"), BAD_FOLDERS, ids=[k for k, _ in BAD_FOLDERS])
def test_a_bad_folder_is_refused_in_one_line_naming_the_problem(tmp_path, kind, message):
    path = _bad_folder(kind, tmp_path)
    for check in (check_images, load_images, lambda p: check_dataset_file(f"images:{p}")):
        with pytest.raises(DatasetFileError, match=message) as err:
            check(path)
        assert "\n" not in str(err.value) and str(err.value).startswith(str(path))


BAD_ARRAYS = [
    ("int64", np.zeros((4, 64, 64), np.int64), r"the array has dtype int64; allowed: uint8"),
    ("rank 2", np.zeros((4, 4096), np.uint8), r"the array has shape \(4, 4096\); allowed: \[N, H"),
    ("rank 5", np.zeros((2, 1, 64, 64, 3), np.uint8), r"shape \(2, 1, 64, 64, 3\)"),
    ("5 channels", np.zeros((4, 64, 64, 5), np.uint8), r"has shape \(4, 64, 64, 5\)"),
    ("too small", np.zeros((4, 48, 64), np.uint8), r"images of 48×64 px"),
    ("0–255 floats", np.full((4, 64, 64), 255.0), r"values in \[255, 255\]; .*divide by 255"),
    ("negative", np.full((4, 64, 64), -0.5, np.float32), r"values in \[-0\.5, -0\.5\]"),
    ("NaN", np.full((4, 64, 64), np.nan, np.float32), r"holds NaN or infinite values"),
    ("binary uint8", np.eye(64, dtype=np.uint8)[None].repeat(4, 0), r"values 0 and 1 only"),
    ("one image", np.zeros((1, 64, 64), np.uint8), r"1 image; allowed: at least 2 images"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "array", "message"), BAD_ARRAYS, ids=[k for k, *_ in BAD_ARRAYS])
def test_a_bad_array_is_refused_in_one_line_naming_the_problem(tmp_path, kind, array, message):
    np.save(tmp_path / "a.npy", array)
    np.savez(tmp_path / "a.npz", images=array, labels=np.arange(3))
    for path in (tmp_path / "a.npy", tmp_path / "a.npz"):
        shown = message.replace("the array", "array 'images'") if path.suffix == ".npz" else message
        for check in (check_images, load_images):
            with pytest.raises(DatasetFileError, match=shown) as err:
                check(path)
            assert "\n" not in str(err.value)


def test_a_bad_value_after_the_checked_sample_is_refused_on_loading(tmp_path):
    array = np.zeros((1030, 64, 64), np.float32)
    array[1029, 0, 0] = 3.0  # beyond check_images' first 1024 images
    np.save(tmp_path / "late.npy", array)
    check_images(tmp_path / "late.npy")
    with pytest.raises(DatasetFileError, match=r"values in \[0, 3\]"):
        load_images(tmp_path / "late.npy")


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("pickled.npy", lambda p: np.save(p, np.array([{}, {}], dtype=object)), "dtype object"),
        ("cut.npy", lambda p: (np.save(p, np.zeros((9, 64, 64))), _truncate(p)), "truncated .npy"),
        ("notzip.npz", lambda p: p.write_bytes(b"PK not a zip"), "truncated .npz"),
        ("keys.npz", lambda p: np.savez(p, a=np.zeros(2), b=np.zeros(2)), "none named 'images'"),
        ("one.png", lambda p: Image.new("L", (64, 64)).save(p), "a single image file"),
        ("data.h5", lambda p: p.write_bytes(b"x"), "a file ending .h5"),
    ],
)
def test_a_bad_array_file_is_named(tmp_path, name, write, message):
    write(tmp_path / name)
    with pytest.raises(DatasetFileError, match=message):
        check_images(tmp_path / name)


# -- training and scoring ---------------------------------------------------------------------
def _config(**kw) -> TrainConfig:
    base = dict(steps=30, batch_size=16, latent_dim=4, device="cpu", lr=1e-3, dataset="images:x")
    return TrainConfig(**{**base, **kw})


class _Recording(UserImages):
    """Remembers, per decoded batch, which rows were the held-out ones (all pixels 255)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[torch.Tensor] = []

    def decode(self, rows, generator=None):
        self.batches.append(rows.flatten(1).min(1).values == 255)
        return super().decode(rows, generator)


def test_training_draws_only_training_rows_and_evaluation_only_held_out_ones():
    rng = np.random.default_rng(8)
    images = rng.integers(0, 255, size=(50, 64, 64, 1), dtype=np.uint8)  # never all 255
    images[45:] = 255  # the held-out rows: white
    ds = _Recording(images, train_rows=45)
    trainer = Trainer(_config(steps=40), ds)
    trainer.fit(log_every=20)
    seen = torch.cat(ds.batches)
    assert len(seen) == 40 * 16 and not seen.any()
    ds.batches.clear()
    result = trainer.evaluate(num_images=1000)
    assert trainer.eval_rows == range(45, 50)
    assert torch.cat(ds.batches).tolist() == [True] * 5  # all five, and only them
    assert np.isfinite(result["recon_nll"]) and len(result["kl_per_dim"]) == 4


def test_a_short_run_on_a_folder_trains_and_scores_the_held_out_images(tmp_path):
    ds = load_images(_folder(tmp_path / "imgs", channels=3, jpeg_every=4))
    logs = []
    trainer = Trainer(_config(), ds)
    trainer.fit(log_every=10, callback=logs.append)
    assert [m["step"] for m in logs] == [10, 20, 30]
    assert all(np.isfinite(m["loss"]) for m in logs)
    assert logs[-1]["recon_nll"] < logs[0]["recon_nll"]
    result = trainer.evaluate()
    assert len(trainer.eval_rows) == 4 and np.isfinite(result["recon_nll"])


def test_ground_truth_sets_keep_training_and_scoring_on_every_row():
    from betavae.data import DSprites

    ds = DSprites()
    assert ds.has_factors and ds.train_rows == len(ds) == 737_280
    trainer = Trainer(_config(dataset="dsprites"), ds)
    assert trainer.train_rows == len(ds) and trainer.eval_rows == range(len(ds))


def test_metrics_that_need_factors_are_refused_in_one_line(tmp_path):
    from betavae.metrics import METRICS, evaluate

    ds = load_images(_folder(tmp_path / "imgs", n=12))
    trainer = Trainer(_config(), ds)
    for metrics in (["mig"], ["unsupervised"], METRICS):
        with pytest.raises(ValueError, match=r"needs ground-truth factors, which dataset 'images'"):
            evaluate(ds, trainer.encode, metrics=metrics, mode="smoke")
    result = evaluate(ds, trainer.encode, metrics=[], kl_per_dim=[0.5, 0.0, 2.0, 0.001])
    assert result.scores == {"kl": pytest.approx(2.501), "active_latents": 2.0}


def test_stats_print_the_mean_pixel_and_the_ignore_the_input_level(tmp_path, capsys):
    from betavae.data.__main__ import main

    folder = _folder(tmp_path / "imgs", n=20)
    assert main(["stats", f"images:{folder}"]) == 0
    out = capsys.readouterr().out
    x = load_images(folder).storage().astype(np.float64) / 255
    p = x.mean(0)
    bce = -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum((1, 2, 3)).mean()
    xc = np.clip(x, 1e-12, 1 - 1e-12)
    floor = -(xc * np.log(xc) + (1 - xc) * np.log1p(-xc)).sum((1, 2, 3)).mean()
    printed = [float(v) for v in re.findall(r"(\d+\.\d+)", out)]
    assert printed == pytest.approx([x.mean(), bce, floor], abs=0.06)
    assert "20 images" in out and "18 for training, 2 held out for scoring" in out
    assert floor < bce  # grey levels: even a perfect reconstruction costs nats
    assert main(["stats", f"images:{tmp_path / 'nothing'}"]) == 2


# -- the sweep's checks -----------------------------------------------------------------------
def test_the_sweep_refuses_a_factor_metric_on_your_own_images(tmp_path):
    from sweeps.config import UsageError, parse_settings

    folder = _folder(tmp_path / "cells", n=6)
    for metric in ("mig", "beta_vae", "dci"):
        with pytest.raises(UsageError) as err:
            parse_settings(["--dataset", f"images:{folder}", "--metric", metric])
        line = str(err.value)
        assert line.startswith(f"--metric: got '{metric}'; allowed: ") and "\n" not in line
        assert f"images:{folder} has none" in line and "allowed: udr, " in line
    # No --metric: on images the sweep scores UDR.
    settings = parse_settings(["--dataset", f"images:{folder}", "--replicates", "2"])
    assert settings.metric == "udr" and settings.evaluated_metrics == ("udr",)
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()


def test_the_sweep_checks_your_images_before_anything_is_written(tmp_path, monkeypatch):
    import betavae.data
    from sweeps.config import UsageError, parse_settings
    from sweeps.config.validation import check_paths

    base = parse_settings(["--storage-path", str(tmp_path / "rr"), "--tracking-uri",
                           f"sqlite:///{tmp_path}/m.db"])  # fmt: skip
    good = _folder(tmp_path / "good", n=6)
    checked = []
    monkeypatch.setitem(
        betavae.data._FILE_CHECKS, "images", lambda p: (checked.append(p), check_images(p))
    )
    check_paths(dataclasses.replace(base, dataset=f"images:{good}"))
    assert checked == [str(good)]
    (good / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match=r"^--dataset: .*good: 1 of 7 image files are unread"):
        check_paths(dataclasses.replace(base, dataset=f"images:{good}"))
    with pytest.raises(UsageError, match=r"naming an existing folder of PNG/JPEG files or"):
        check_paths(dataclasses.replace(base, dataset=f"images:{tmp_path / 'none'}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good"]  # nothing written
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
