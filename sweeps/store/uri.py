"""Opening a storage location with pyarrow: a local path or a URI (``s3://…`` with pyarrow's
``?key=value`` options)."""

from __future__ import annotations

from pathlib import Path


def open_uri(uri: str):
    """``(pyarrow filesystem, path)`` of a local path or a URI pyarrow can open."""
    import pyarrow.fs

    if "://" not in uri:
        return pyarrow.fs.LocalFileSystem(), str(Path(uri).resolve())
    return pyarrow.fs.FileSystem.from_uri(uri)
