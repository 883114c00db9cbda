"""The sweep folder, ``STORAGE/NAME``: local or remote (pyarrow), Tune's state beside ours.

Ours: ``sweep.json`` (the search settings a resume must keep), ``summary.json`` and
``report/``; the Optuna journal lives there too when the folder is local.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

from analysis.redaction import without_credentials
from analysis.schema import REPORT_DIR, SETTINGS_FILE, STUDY_FILE
from sweeps.settings import SweepSettings, UsageError, flag


def filesystem(settings: SweepSettings):
    """``(pyarrow filesystem, path)`` of the sweep folder ``STORAGE/NAME``."""
    import pyarrow
    import pyarrow.fs

    if settings.storage_is_local:
        return pyarrow.fs.LocalFileSystem(), settings.experiment_path
    try:
        return _open_uri(settings.experiment_path)
    except (pyarrow.ArrowException, OSError) as err:  # a bad option, an unreachable store
        raise UsageError(
            f"--storage-path: got {settings.storage_path!r}; allowed: a URI pyarrow can open "
            f"(pyarrow: {err})"
        ) from None


@functools.cache
def _open_uri(uri: str):
    """``pyarrow.fs.FileSystem.from_uri``, once per URI: for S3 without a region it asks the
    bucket's region over the network, and a run opens its sweep folder several times."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def read_text(settings: SweepSettings, name: str) -> str | None:
    import pyarrow.fs

    fs, root = filesystem(settings)
    path = f"{root}/{name}"
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def write_text(settings: SweepSettings, name: str, text: str) -> None:
    fs, root = filesystem(settings)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{name}") as f:
        f.write(text.encode())


def study_path(settings: SweepSettings) -> Path:
    """The Optuna journal: inside the sweep folder when it is local. With remote storage it
    is written on this machine (Optuna's journal needs a local file), in a folder of its own
    per sweep folder, and copied to the sweep folder when the run ends (``upload_study``)."""
    if settings.storage_is_local:
        return Path(settings.experiment_path) / STUDY_FILE
    key = hashlib.sha256(settings.shown_experiment_path.encode()).hexdigest()[:16]
    return Path.home() / ".betavae" / "studies" / key / STUDY_FILE


def download_study(settings: SweepSettings) -> None:
    """Remote storage: fetch the sweep's journal when this machine has none (a resume on
    another machine than the one that started the sweep)."""
    local = study_path(settings)
    if settings.storage_is_local or local.exists():
        return
    text = read_text(settings, STUDY_FILE)
    if text is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(text)


def upload_study(settings: SweepSettings) -> None:
    """Remote storage: copy this machine's journal into the sweep folder."""
    local = study_path(settings)
    if not settings.storage_is_local and local.is_file():
        write_text(settings, STUDY_FILE, local.read_text())


def check_sweep_folder(settings: SweepSettings) -> SweepSettings:
    """A new sweep must not exist yet; a resumed one must exist with the same search.

    Returns ``settings`` with ``--resume auto`` decided: True when the sweep exists.
    """
    saved = read_text(settings, SETTINGS_FILE)
    where = settings.shown_experiment_path
    if settings.resume == "auto":
        settings = dataclasses.replace(settings, resume=saved is not None)
    if not settings.resume:
        if saved is not None:
            raise UsageError(
                f"--name: sweep {settings.name!r} already exists at {where}; pass --resume to "
                "continue it, or choose another --name"
            )
        return settings
    if saved is None:
        raise UsageError(f"--resume: no sweep named {settings.name!r} at {where}")
    before = json.loads(saved)["search"]
    now = settings.search_settings()
    # A setting newer than the sweep is compared with its default: what the sweep ran with.
    defaults = SweepSettings(preset=settings.preset).search_settings()
    for key in now:
        started = before.get(key, defaults[key])
        if started != now[key]:
            raise UsageError(
                f"{flag(key)}: the sweep was started with {started!r}, got {now[key]!r}; "
                "a resumed sweep keeps its search settings (start a new --name to change them)"
            )
    return settings


def report_dir(settings: SweepSettings) -> Path:
    """Where the report is written first: the sweep folder, or ./reports/NAME when the sweep
    lives in remote storage (it is then copied there too)."""
    if settings.storage_is_local:
        return Path(settings.experiment_path) / REPORT_DIR
    return Path("reports") / settings.name


def copy_report(settings: SweepSettings, local: Path) -> None:
    """Copy the report written to ``local`` into remote sweep storage (``NAME/report``)."""
    import pyarrow.fs

    fs, root = filesystem(settings)
    fs.create_dir(f"{root}/{REPORT_DIR}", recursive=True)
    pyarrow.fs.copy_files(
        str(local.resolve()),
        f"{root}/{REPORT_DIR}",
        source_filesystem=pyarrow.fs.LocalFileSystem(),
        destination_filesystem=fs,
    )


def storage_credentials(settings: SweepSettings) -> dict[str, str]:
    """S3 credentials written into ``--storage-path`` (``s3://KEY:SECRET@bucket/…`` or pyarrow's
    ``access_key``/``secret_key``/``session_token`` options) as AWS environment variables.

    The driver exports them and gives them to Ray's workers (``runtime_env``), and Tune gets
    the URI without them: Tune pickles its storage into the sweep folder (``tuner.pkl``), so a
    secret it was handed would be written to the bucket.
    """
    if settings.storage_is_local or not settings.storage_root.startswith("s3://"):
        return {}
    import urllib.parse

    parts = urllib.parse.urlsplit(settings.storage_root)
    options = dict(urllib.parse.parse_qsl(parts.query))
    names = {
        "AWS_ACCESS_KEY_ID": parts.username or options.get("access_key"),
        "AWS_SECRET_ACCESS_KEY": parts.password or options.get("secret_key"),
        "AWS_SESSION_TOKEN": options.get("session_token"),
    }
    return {k: urllib.parse.unquote(v) for k, v in names.items() if v}


def tune_storage(settings: SweepSettings) -> tuple[str, str]:
    """``(storage_path, experiment_path)`` as Tune is given them: without credentials (see
    ``storage_credentials``)."""
    if settings.storage_is_local:
        return settings.storage_root, settings.experiment_path
    return without_credentials(settings.storage_root), settings.shown_experiment_path
