"""The sweep folder, ``STORAGE/NAME``: local or remote (pyarrow), Tune's state beside ours.

Ours: ``sweep.json`` (the search settings a resume must keep), ``summary.json``, ``driver.json``
(the driver's lease) and ``report/``; the Optuna journal lives there too when the folder is
local. :class:`SweepFolder` is built once per run from the storage path and the sweep's name and
is the one place that knows whether the folder is local or remote.
"""

from __future__ import annotations

import functools
import hashlib
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from analysis.redaction import without_credentials
from analysis.schema import REPORT_DIR, STUDY_FILE
from sweeps.config.settings import UsageError, storage_is_local
from sweeps.store.journal import JOURNAL_OBJECTS, local_journal, mirror_for
from sweeps.store.uri import open_uri, under, write_whole


@dataclass(frozen=True)
class SweepFolder:
    """``STORAGE/NAME``: where it is, how it is shown, and its files.

    storage_path: ``--storage-path`` as given (a local path, ``file://PATH`` or a URI that may
    end in pyarrow's ``?key=value`` options, e.g. ``endpoint_override`` for S3-compatible
    stores, and may hold credentials); name: the sweep's name.
    """

    storage_path: str
    name: str

    # -- where ------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return storage_is_local(self.storage_path)

    @property
    def root(self) -> str:
        """The storage as Tune needs it: an absolute local path or the URI (options kept)."""
        if self.is_local:
            return str(Path(self.storage_path.removeprefix("file://")).expanduser().resolve())
        base, mark, options = self.storage_path.partition("?")
        return base.rstrip("/") + mark + options

    @property
    def path(self) -> str:
        """The folder itself: ``ROOT/NAME`` (a URI's options kept at its end)."""
        return under(self.root, self.name)

    @property
    def shown(self) -> str:
        """``path`` as written and printed, and the sweep's identity (the parent run's tag, the
        journal's local folder): without the credentials that reach it."""
        return without_credentials(self.path)

    def tune_paths(self) -> tuple[str, str]:
        """``(storage_path, experiment_path)`` as Tune is given them: without credentials
        (Tune pickles its storage into the folder; see ``credentials``)."""
        if self.is_local:
            return self.root, self.path
        return without_credentials(self.root), self.shown

    def credentials(self) -> dict[str, str]:
        """S3 credentials written into the storage URI (``s3://KEY:SECRET@bucket/…`` or pyarrow's
        ``access_key``/``secret_key``/``session_token`` options) as AWS environment variables:
        the driver exports them and hands them to Ray's workers, Tune gets the URI without."""
        if self.is_local or not self.root.startswith("s3://"):
            return {}
        parts = urllib.parse.urlsplit(self.root)
        options = dict(urllib.parse.parse_qsl(parts.query))
        names = {
            "AWS_ACCESS_KEY_ID": parts.username or options.get("access_key"),
            "AWS_SECRET_ACCESS_KEY": parts.password or options.get("secret_key"),
            "AWS_SESSION_TOKEN": options.get("session_token"),
        }
        return {k: urllib.parse.unquote(v) for k, v in names.items() if v}

    @property
    def study_location(self) -> str:
        """Where the Optuna journal lives: the file inside a local folder; with remote storage
        the folder of its objects, ``NAME/optuna.journal.d`` (``sweeps.store.journal``: written
        after every change), as a URI without credentials."""
        if self.is_local:
            return str(Path(self.path) / STUDY_FILE)
        return under(self.shown, JOURNAL_OBJECTS)

    @property
    def study_path(self) -> Path:
        """The journal file on this machine: ``study_location`` when local, else the mirror's
        local copy (Optuna's journal needs a local file)."""
        if self.is_local:
            return Path(self.study_location)
        return local_journal(self.study_location)

    @property
    def _legacy_study_path(self) -> Path:
        """Where sweeps started before the journal was mirrored kept their local copy (their
        pickled searcher still opens it); uploaded whole when the driver ended."""
        key = hashlib.sha256(self.shown.encode()).hexdigest()[:16]
        return Path.home() / ".betavae" / "studies" / key / STUDY_FILE

    @property
    def report_dir(self) -> Path:
        """Where the report is written first: the folder, or ./reports/NAME when the folder is
        remote (``upload_dir`` copies it there too)."""
        if self.is_local:
            return Path(self.path) / REPORT_DIR
        return Path("reports") / self.name

    # -- files -----------------------------------------------------------------------------
    @functools.cached_property
    def _fs(self):
        import pyarrow

        try:  # for S3 without a region: one question over the network, hence cached
            return open_uri(self.path)
        except (pyarrow.ArrowException, OSError) as err:  # a bad option, an unreachable store
            raise UsageError(
                f"--storage-path: got {self.storage_path!r}; allowed: a URI pyarrow can open "
                f"(pyarrow: {err})"
            ) from None

    def filesystem(self):
        """``(pyarrow filesystem, path of the folder in it)``."""
        return self._fs

    def exists(self, name: str) -> bool:
        import pyarrow.fs

        fs, root = self._fs
        return fs.get_file_info(f"{root}/{name}").type == pyarrow.fs.FileType.File

    def read_text(self, name: str) -> str | None:
        """The file ``name`` in the folder, or None when there is none."""
        fs, root = self._fs
        if not self.exists(name):
            return None
        with fs.open_input_stream(f"{root}/{name}") as f:
            return f.read().decode()

    def write_text(self, name: str, text: str) -> None:
        """Write ``name`` whole or not at all: a temporary file renamed over it locally, one
        object written on close remotely (object stores show no partial object)."""
        fs, root = self._fs
        fs.create_dir(root, recursive=True)
        write_whole(fs, f"{root}/{name}", text.encode())

    def delete(self, name: str) -> None:
        fs, root = self._fs
        fs.delete_file(f"{root}/{name}")

    def upload_dir(self, local: Path, name: str) -> None:
        """Copy the local folder ``local`` into the sweep folder as ``name``."""
        import pyarrow.fs

        fs, root = self._fs
        fs.create_dir(f"{root}/{name}", recursive=True)
        pyarrow.fs.copy_files(
            str(local.resolve()), f"{root}/{name}",
            source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs,
        )  # fmt: skip

    # -- the Optuna journal with remote storage ----------------------------------------------
    def download_study(self) -> None:
        """Before a resume: this machine's copy of the journal rebuilt from the bucket's objects
        when they hold more (another machine, a fresh HOME). A sweep started before the journal
        was mirrored has only the whole ``optuna.journal``: fetched as it was then."""
        if self.is_local:
            return
        mirror = mirror_for(self.study_location)
        if mirror.restore() or mirror.local.is_file():
            return
        legacy = self._legacy_study_path
        text = None if legacy.exists() else self.read_text(STUDY_FILE)
        if text is not None:
            legacy.parent.mkdir(parents=True, exist_ok=True)
            legacy.write_text(text)

    def upload_study(self) -> None:
        """The whole journal as one file, ``NAME/optuna.journal``, for optuna-dashboard and
        other readers of a plain journal (the objects stay the sweep's own record)."""
        if self.is_local:
            return
        if self.study_path.is_file():
            mirror_for(self.study_location).sync()  # the objects first: they are the record
            self.write_text(STUDY_FILE, self.study_path.read_text())
        elif self._legacy_study_path.is_file():
            self.write_text(STUDY_FILE, self._legacy_study_path.read_text())
