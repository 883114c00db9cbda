"""Settings → checked: every value a user can pass, before Ray starts.

``validate`` raises :class:`UsageError` with one line naming the flag, the value and what is
allowed (``sweeps/BAD_INPUTS.md`` lists them): first ``check_values``, the rules of
``sweeps.config.flags.FLAGS`` (pure), then ``check_paths``, which looks at this machine's
folders and reads the dataset file's header (or checks the folder of your own images).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

from sweeps.config.flags import FLAGS, flag
from sweeps.config.settings import SweepSettings, UsageError, storage_is_local


def fail(message: str) -> NoReturn:
    raise UsageError(message)


def need(ok: bool, field: str, value: Any, allowed: str) -> None:
    if not ok:
        fail(f"{flag(field)}: got {value!r}; allowed: {allowed}")


def validate(settings: SweepSettings) -> None:
    """Raise :class:`UsageError` naming the first setting outside what is allowed."""
    check_values(settings)
    check_paths(settings)


def check_values(settings: SweepSettings) -> None:
    """Every flag's rule, in the table's order; reads no file."""
    for entry in FLAGS:
        if entry.check is None:
            continue
        value = getattr(settings, entry.field)
        need(entry.check(value, settings), entry.field, entry.shown(value),
             entry.allowed_for(settings))  # fmt: skip


def check_paths(s: SweepSettings) -> None:
    """What the values name on this machine: the dataset file, the sqlite database's folder,
    a local storage folder; last, the dataset file's header (no images are read), or for
    ``images:PATH`` ``check_images`` (headers, and JPEGs decoded at 1/8 scale)."""
    name, _, path = s.dataset.partition(":")
    if name == "images" and not Path(path).exists():
        fail(f"--dataset: got {s.dataset!r}; allowed: images:PATH naming an existing folder of "
             "PNG/JPEG files or .npy/.npz file")  # fmt: skip
    if path and name != "images" and not Path(path).is_file():
        fail(f"--dataset: got {s.dataset!r}; allowed: a {name} spec naming an existing file")
    if s.tracking_uri.startswith("sqlite:///"):
        db_dir = Path(s.tracking_uri.removeprefix("sqlite:///")).expanduser().parent
        need(db_dir.is_dir() and os.access(db_dir, os.W_OK), "tracking_uri", s.tracking_uri,
             "a sqlite file in an existing, writable directory")  # fmt: skip
    if storage_is_local(s.storage_path):
        root = Path(s.storage_path.removeprefix("file://")).expanduser()
        need(not root.exists() or root.is_dir(), "storage_path", s.storage_path,
             "a directory (this is a file)")  # fmt: skip
        existing = _first_existing(root.absolute())
        need(existing.is_dir() and os.access(existing, os.W_OK), "storage_path", s.storage_path,
             f"a folder that can be created ({existing} is not a writable directory)")  # fmt: skip
    if path:  # only a spec naming a file needs the dataset code (and its torch import)
        from betavae.data import DatasetFileError, check_dataset_file

        try:
            check_dataset_file(s.dataset)
        except DatasetFileError as err:
            fail(f"--dataset: {err}")


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
