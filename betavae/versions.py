"""Versions of the libraries results depend on, recorded beside every result."""

from __future__ import annotations

import platform
from importlib import metadata

_PACKAGES = ("torch", "numpy", "scikit-learn", "safetensors")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
