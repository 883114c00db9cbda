from __future__ import annotations

import h5py
import numpy as np
import pytest

from betavae.data import DatasetFileError, Shapes3D, load_dataset, load_h5
from betavae.data.shapes3d import FACTOR_NAMES

SMALL = (2, 2, 3, 2, 2, 3)  # 144 images in the official layout
N = int(np.prod(SMALL))


def _labels(sizes=SMALL) -> np.ndarray:
    """Labels in the official row order (orientation fastest) with official-style values."""
    grids = [
        np.linspace(0, 0.9, sizes[0]),
        np.linspace(0, 0.9, sizes[1]),
        np.linspace(0, 0.9, sizes[2]),
        np.linspace(0.75, 1.25, sizes[3]),
        np.arange(sizes[4], dtype=float),
        np.linspace(-30, 30, sizes[5]),
    ]
    mesh = np.meshgrid(*grids, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _write(path, images=None, labels=None, drop=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(N, 64, 64, 3), dtype=np.uint8) if images is None else images
    labels = _labels() if labels is None else labels
    with h5py.File(path, "w") as f:
        if drop != "images":
            f.create_dataset("images", data=images)
        if drop != "labels":
            f.create_dataset("labels", data=labels)
    return path, images


def test_small_file_in_the_official_layout_loads(tmp_path):
    path, images = _write(tmp_path / "3dshapes.h5")
    ds = load_h5(path, SMALL)
    assert isinstance(ds, Shapes3D)
    assert ds.factor_names == FACTOR_NAMES and ds.factor_sizes == SMALL
    assert ds.num_channels == 3
    classes = np.array([[1, 0, 2, 1, 0, 2], [0, 1, 1, 0, 1, 0]])
    out = ds.images(classes)
    assert out.shape == (2, 3, 64, 64) and out.dtype == np.float32
    rows = ds.classes_to_index(classes)
    np.testing.assert_allclose(out, images[rows].transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    # the label of a row says the factor classes we attribute to it
    np.testing.assert_array_equal(ds.index_to_classes(np.array([N - 1])), [[s - 1 for s in SMALL]])


def test_load_dataset_spec_reads_the_official_sizes(tmp_path):
    path, _ = _write(tmp_path / "3dshapes.h5")
    with pytest.raises(DatasetFileError, match=r"images is uint8 \(144, 64, 64, 3\)"):
        load_dataset(f"shapes3d:{path}")  # 144 images are not the official 480,000


@pytest.mark.parametrize("drop", ["images", "labels"])
def test_missing_dataset_is_rejected(tmp_path, drop):
    path, _ = _write(tmp_path / "3dshapes.h5", drop=drop)
    with pytest.raises(DatasetFileError, match=f"missing dataset '{drop}'"):
        load_h5(path, SMALL)


def test_shuffled_rows_are_rejected(tmp_path):
    labels = _labels()[np.random.default_rng(0).permutation(N)]
    path, _ = _write(tmp_path / "3dshapes.h5", labels=labels)
    with pytest.raises(DatasetFileError, match="not in the documented order"):
        load_h5(path, SMALL)


def test_wrong_dtype_and_non_hdf5_are_rejected(tmp_path):
    path, _ = _write(tmp_path / "a.h5", images=np.zeros((N, 64, 64, 3), np.float32))
    with pytest.raises(DatasetFileError, match="float32"):
        load_h5(path, SMALL)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetFileError, match="unreadable"):
        load_h5(junk, SMALL)
