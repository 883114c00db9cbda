from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest

from betavae.data import DatasetFileError, DSprites, load_dataset, load_npz, write_npz
from betavae.data.dsprites_npz import N_IMAGES, all_classes, classes_to_values

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "dsprites.npz"
    return write_npz(path)


def test_written_file_reads_like_the_official_one(official):
    with np.load(official, allow_pickle=True, encoding="latin1") as npz:
        assert sorted(npz.files) == ["imgs", "latents_classes", "latents_values", "metadata"]
        imgs, classes, values = npz["imgs"], npz["latents_classes"], npz["latents_values"]
        meta = npz["metadata"][()]
    assert imgs.shape == (737280, 64, 64) and imgs.dtype == np.uint8
    assert set(np.unique(imgs[::997])) == {0, 1}
    assert classes.shape == (737280, 6) and classes.dtype == np.int64
    assert values.shape == (737280, 6) and values.dtype == np.float64
    assert list(meta["latents_sizes"]) == [1, 3, 6, 40, 32, 32]
    assert tuple(meta["latents_names"]) == (
        "color",
        "shape",
        "scale",
        "orientation",
        "posX",
        "posY",
    )
    # Official ordering: posY fastest; row i has classes i in mixed radix.
    bases = np.array([737280, 245760, 40960, 1024, 32, 1])
    np.testing.assert_array_equal(classes @ bases, np.arange(737280))
    np.testing.assert_array_equal(values[1], [1.0, 1.0, 0.5, 0.0, 0.0, 1 / 31])
    np.testing.assert_allclose(values[-1], [1.0, 3.0, 1.0, 2 * np.pi, 1.0, 1.0])
    # Compare bit-packed (377 MB) rather than as 3 GB arrays.
    assert np.array_equal(np.packbits(imgs, axis=-1), DSprites().storage())


def test_loader_round_trips_and_never_unpickles(official, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise AssertionError("the loader unpickled something")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    loaded = load_dataset(f"dsprites-npz:{official}")
    assert np.array_equal(loaded.storage(), DSprites().storage())


def test_truncated_file_is_rejected(official, tmp_path):
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(official.read_bytes()[: official.stat().st_size // 2])
    with pytest.raises(DatasetFileError, match="unreadable or truncated"):
        load_npz(bad)


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _valid_arrays(num_images: int = 1):
    """Valid latents; ``imgs`` has the full size only when a test needs it (3 GB)."""
    classes = all_classes()
    return {
        "imgs": np.zeros((num_images, 64, 64), np.uint8),
        "latents_classes": classes,
        "latents_values": classes_to_values(classes),
    }


def test_non_binary_images_are_rejected(tmp_path):
    arrays = _valid_arrays(N_IMAGES)
    arrays["imgs"][123, 4, 5] = 255
    with pytest.raises(DatasetFileError, match="not binary"):
        load_npz(_write(tmp_path / "gray.npz", **arrays))


def test_wrong_row_order_is_rejected(tmp_path):
    arrays = _valid_arrays()
    arrays["latents_classes"] = arrays["latents_classes"][::-1].copy()
    with pytest.raises(DatasetFileError, match="not in the official order"):
        load_npz(_write(tmp_path / "order.npz", **arrays))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("imgs"), "missing key 'imgs'"),
        (lambda a: a.pop("latents_classes"), "missing key 'latents_classes'"),
        (
            lambda a: a.update(imgs=np.zeros((10, 64, 64), np.uint8)),
            r"imgs has shape \(10, 64, 64\)",
        ),
        (lambda a: a.update(imgs=np.zeros((10, 64, 64), np.float32)), "dtype float32"),
        (lambda a: a.update(latents_values=np.zeros((10, 6))), "latents_values has shape"),
        (
            lambda a: a.update(latents_classes=np.zeros((N_IMAGES, 5), np.int64)),
            "latents_classes has shape",
        ),
        (lambda a: a.update(latents_classes=np.zeros((N_IMAGES, 6), np.float64)), "not an integer"),
    ],
)
def test_wrong_layout_is_rejected(tmp_path, change, message):
    arrays = _valid_arrays()
    change(arrays)
    with pytest.raises(DatasetFileError, match=message):
        load_npz(_write(tmp_path / "bad.npz", **arrays))


def test_not_a_zip_and_missing_file_are_rejected(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(DatasetFileError, match="unreadable"):
        load_npz(junk)
    with pytest.raises(DatasetFileError, match="no such file"):
        load_npz(tmp_path / "absent.npz")


def test_a_pickled_object_array_is_not_loaded(tmp_path):
    path = tmp_path / "pickled.npz"
    arrays = _valid_arrays()
    np.savez(
        path, latents_classes=arrays["latents_classes"], latents_values=arrays["latents_values"]
    )
    with zipfile.ZipFile(path, "a") as zf, zf.open("imgs.npy", "w") as f:
        np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetFileError, match="imgs has dtype object, not uint8"):
        load_npz(path)
