"""Opening a storage location with pyarrow: a local path or a URI (``s3://…`` with pyarrow's
``?key=value`` options)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def open_uri(uri: str):
    """``(pyarrow filesystem, path)`` of a local path or a URI pyarrow can open."""
    import pyarrow.fs

    if "://" not in uri:
        return pyarrow.fs.LocalFileSystem(), str(Path(uri).resolve())
    return pyarrow.fs.FileSystem.from_uri(uri)


def under(uri: str, name: str) -> str:
    """``uri``'s ``name`` inside it: ``BASE/NAME`` with a URI's ``?options`` kept at its end."""
    base, mark, options = uri.partition("?")
    return f"{base.rstrip('/')}/{name}{mark}{options}"


def open_for_small_writes(uri: str):
    """``open_uri``, where on S3 a small object is written with one PutObject
    (``allow_delayed_open``) instead of a three-request multipart upload."""
    if uri.startswith("s3://") and "allow_delayed_open" not in uri:
        uri += ("&" if "?" in uri else "?") + "allow_delayed_open=true"
    return open_uri(uri)


def write_whole(fs, path: str, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file renamed over it on a local file
    system, one object written on close on a store (object stores show no partial object)."""
    import pyarrow.fs

    if not isinstance(fs, pyarrow.fs.LocalFileSystem):
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    folder, _, name = path.rpartition("/")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
