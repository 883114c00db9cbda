"""Datasets: procedural dSprites and its variants, official files, Shapes3D (all with
ground-truth factors), and the user's own images (without)."""

from __future__ import annotations

from betavae.catalogue import DATASET_SPECS, check_dataset_spec
from betavae.data.base import GroundTruthDataset, ImageDataset, mixed_radix_bases
from betavae.data.dsprites import ColorDSprites, DSprites, NoisyDSprites
from betavae.data.dsprites_npz import DatasetFileError, check_npz, load_npz, write_npz
from betavae.data.images import UserImages, check_images, load_images
from betavae.data.shapes3d import Shapes3D, check_h5, load_h5

_PROCEDURAL = {
    "dsprites": DSprites,
    "dsprites-noisy": NoisyDSprites,
    "dsprites-color": ColorDSprites,
}
_FILES = {"dsprites-npz": load_npz, "shapes3d": load_h5, "images": load_images}
_FILE_CHECKS = {"dsprites-npz": check_npz, "shapes3d": check_h5, "images": check_images}


def check_dataset_file(spec: str) -> None:
    """For a ``NAME:PATH`` spec, check the file's (or folder's) layout cheaply (see each
    check); raises :class:`DatasetFileError`. Procedural specs have no file and pass."""
    check_dataset_spec(spec)
    name, _, path = spec.partition(":")
    if name in _FILE_CHECKS:
        _FILE_CHECKS[name](path)


def load_dataset(spec: str) -> ImageDataset:
    """Build the dataset a spec names, e.g. ``"dsprites"`` or ``"shapes3d:/data/3dshapes.h5"``
    (a :class:`GroundTruthDataset` unless the spec is ``images:PATH``)."""
    check_dataset_spec(spec)
    name, _, path = spec.partition(":")
    if name in _PROCEDURAL:
        return _PROCEDURAL[name]()
    return _FILES[name](path)


__all__ = [
    "DATASET_SPECS",
    "ColorDSprites",
    "DSprites",
    "DatasetFileError",
    "GroundTruthDataset",
    "ImageDataset",
    "NoisyDSprites",
    "Shapes3D",
    "UserImages",
    "check_dataset_file",
    "check_dataset_spec",
    "check_h5",
    "check_images",
    "check_npz",
    "load_dataset",
    "load_h5",
    "load_images",
    "load_npz",
    "mixed_radix_bases",
    "write_npz",
]
