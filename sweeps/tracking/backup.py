"""A sqlite MLflow store that outlives its machine: copied into the sweep's folder as trials end.

On a cluster the sqlite file lives on the head; ``ray down``, a replaced head or the end of a
RayJob takes it away, while the sweep's storage (S3) stays. The driver copies the database to
``STORAGE/NAME/_mlflow/`` (its sweep's folder) with sqlite's online backup (a consistent copy
while the MLflow server keeps writing):

- when a trial ends, at most once every ``BETAVAE_MLFLOW_BACKUP_EVERY`` seconds (300), and
  always once the sweep has ended or stopped (``final=True``, after the parent run's end);
- in chunks of ``CHUNK_SIZE`` bytes named by their SHA-256 (``chunks/HASH``), listed in order
  by ``manifest.json``, which also names the sweep, the database (its Default experiment's
  creation time: a copy restored elsewhere keeps it) and a watermark of the copy's content.
  Only chunks the stored manifest lacks are uploaded; the manifest is written last, then the
  chunks it no longer lists are deleted;
- never over a newer copy: when the stored manifest is this sweep's, of this database, and its
  watermark is at least ours (a head restored from an older copy, a late upload), nothing is
  written. The watermark is ``(rows, newest)``: the sum of every table's largest rowid (grows
  with each row MLflow inserts) and the newest time MLflow recorded (runs' starts and ends,
  metrics, experiments), compared in that order.

A new head restores the backup before its MLflow server starts (``cluster/gpu.yaml`` does):

    python -m sweeps.tracking.backup restore s3://bucket/sweeps paper /home/ray/mlflow/mlflow.db

It keeps a database that exists, checks every chunk against the manifest's hash, and refuses in
one line (exit 2) a damaged backup or one whose manifest names another sweep (a copied or
renamed folder; ``--adopt`` takes it anyway). ``STORAGE/_mlflow/mlflow.db``, the single backup
every sweep on a storage root overwrote before, is never restored by itself: it may be any
sweep's or cluster's (``--adopt`` takes it when the sweep has no backup of its own).

Which file is backed up: ``--mlflow-backup PATH`` (``BETAVAE_MLFLOW_BACKUP``); by default the
database of a ``sqlite:///`` tracking URI when the sweep's storage is remote. A managed database
(``postgresql://`` on RDS) needs none of this.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import json
import logging
import os
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sweeps.store.folder import SweepFolder
from sweeps.store.uri import open_for_small_writes, open_uri, under, write_whole

logger = logging.getLogger(__name__)
PROG = "python -m sweeps.tracking.backup"
BACKUP_DIR = "_mlflow"
MANIFEST = "manifest.json"
CHUNKS = "chunks"
LEGACY = f"{BACKUP_DIR}/mlflow.db"  # before per-sweep backups: one per storage root
FORMAT = 1
#: sqlite changes pages all over the file (every index takes rows where their keys sort): of
#: 1 MiB chunks nearly all change between copies, of 64 KiB a quarter (bench/RESULTS.md).
CHUNK_SIZE = 64 << 10
INTERVAL_S = float(os.environ.get("BETAVAE_MLFLOW_BACKUP_EVERY", "300"))
_SQLITE = b"SQLite format 3\x00"
#: (table, column) pairs whose largest value is the newest time MLflow recorded, in ms.
_TIMES = (
    ("runs", "start_time"),
    ("runs", "end_time"),
    ("latest_metrics", "timestamp"),
    ("experiments", "last_update_time"),
)


class BackupRefused(Exception):
    """A backup that must not be restored; the message is one line for the user."""


def backup_uri(storage_root: str, name: str) -> str:
    """The sweep's backup folder, ``STORAGE/NAME/_mlflow`` (a URI's options kept at its end)."""
    return under(SweepFolder(storage_root, name).path, BACKUP_DIR)


def describe(database: Path) -> dict[str, Any]:
    """What a manifest says of a sqlite MLflow file: which database it is, and its watermark."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)

    def value(sql: str) -> int | None:
        try:
            row = db.execute(sql).fetchone()
        except sqlite3.OperationalError:  # another schema (a WITHOUT ROWID table, no column)
            return None
        return row[0] if row else None

    try:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        rows = sum(
            value(f'select max(rowid) from "{t}"') or value(f'select count(*) from "{t}"') or 0
            for t in tables
        )
        newest = max(
            (value(f'select max("{c}") from "{t}"') or 0 for t, c in _TIMES if t in tables),
            default=0,
        )
        created = value("select creation_time from experiments order by experiment_id limit 1")
    finally:
        db.close()
    return {"database_created_ms": created, "watermark": {"rows": rows, "newest_ms": newest}}


def _mark(manifest: dict[str, Any]) -> tuple[int, int]:
    mark = manifest["watermark"]
    return int(mark["rows"]), int(mark["newest_ms"])


def replaces(ours: dict[str, Any], stored: dict[str, Any] | None) -> bool:
    """Whether our snapshot may replace the stored one: always, unless the stored one is a copy
    of the same sweep's same database with a higher watermark, or the same watermark and the
    same bytes (an update that inserts no row, a run's end, moves the watermark only when its
    time is the newest: equal watermarks with other bytes are replaced)."""
    if stored is None or stored.get("sweep") != ours["sweep"]:
        return True
    if stored.get("database_created_ms") != ours["database_created_ms"]:
        return True  # another database: this sweep's store is now ours
    try:
        theirs, mine = _mark(stored), _mark(ours)
    except (KeyError, TypeError, ValueError):  # a damaged manifest protects nothing
        return True
    return theirs < mine or (theirs == mine and stored.get("chunks") != ours["chunks"])


def _read_manifest(fs, folder: str) -> dict[str, Any] | None:
    """The stored manifest; None when there is none. Raises ValueError when it is unreadable."""
    import pyarrow.fs

    path = f"{folder}/{MANIFEST}"
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        manifest = json.loads(f.read())
    if not isinstance(manifest, dict) or not isinstance(manifest.get("chunks"), list):
        raise ValueError("not a backup manifest")
    return manifest


class DatabaseBackup:
    """Copies ``database`` into the sweep's folder (see the module doc); thread-safe."""

    def __init__(
        self,
        database: str | Path,
        storage_root: str,
        name: str,
        *,
        interval_s: float = INTERVAL_S,
        chunk_size: int = CHUNK_SIZE,
        clock: Any = time.monotonic,
    ) -> None:
        self.database = Path(database)
        self.name = name
        self.target = backup_uri(storage_root, name)
        self.interval_s = interval_s
        self.chunk_size = chunk_size
        self.clock = clock
        self._setup()

    def _setup(self) -> None:
        self._lock = threading.Lock()
        self._fs: tuple[Any, str] | None = None
        self._last: float | None = None  # when this process last copied
        self._swept = False  # orphan chunks of an earlier process deleted
        self._warned = False

    def __getstate__(self) -> dict:  # pickled into Tune's state with the MLflow writer
        keys = ("database", "name", "target", "interval_s", "chunk_size")
        return {k: self.__dict__[k] for k in keys}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.clock = time.monotonic
        self._setup()

    def _filesystem(self) -> tuple[Any, str]:
        """One filesystem for this backup (``open_for_small_writes``)."""
        if self._fs is None:
            fs, path = open_for_small_writes(self.target)
            fs.create_dir(f"{path}/{CHUNKS}", recursive=True)
            self._fs = fs, path
        return self._fs

    def copy(self, *, final: bool = False) -> bool:
        """Copy the database unless one was copied less than ``interval_s`` ago (``final``: in
        any case); True when something was uploaded."""
        if not self.database.is_file():
            return False
        with self._lock:
            now = self.clock()
            if not final and self._last is not None and now - self._last < self.interval_s:
                return False
            self._last = now
            with tempfile.TemporaryDirectory() as tmp:
                snapshot = Path(tmp) / "mlflow.db"
                source = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
                try:
                    target = sqlite3.connect(snapshot)
                    try:
                        source.backup(target)
                    finally:
                        target.close()
                finally:
                    source.close()
                return self._upload(snapshot)

    def _upload(self, snapshot: Path) -> bool:
        fs, folder = self._filesystem()
        with snapshot.open("rb") as f:
            hashes = [
                hashlib.sha256(piece).hexdigest()
                for piece in iter(lambda: f.read(self.chunk_size), b"")
            ]
        ours = {
            "format": FORMAT,
            "sweep": self.name,
            **describe(snapshot),
            "taken": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "size": snapshot.stat().st_size,
            "chunk_size": self.chunk_size,
            "chunks": hashes,
        }
        try:
            stored = _read_manifest(fs, folder)
        except (ValueError, UnicodeDecodeError):
            stored = None  # damaged: replaced
        if not replaces(ours, stored):
            if not self._warned and _mark(stored) > _mark(ours):  # not our own last copy
                self._warned = True
                logger.warning(
                    "%s holds a copy of this MLflow database as new as this one or newer (%s, "
                    "watermark %s; ours %s): not replaced",
                    self.target, stored.get("taken"), stored["watermark"], ours["watermark"],
                )  # fmt: skip
            return False
        if stored is not None and stored.get("sweep") != self.name:
            logger.warning(
                "%s held the MLflow backup of sweep %r: replaced by sweep %r's",
                self.target, stored.get("sweep"), self.name,
            )  # fmt: skip
        present = set(stored["chunks"]) if stored else set()
        with snapshot.open("rb") as f:
            for digest in hashes:
                piece = f.read(self.chunk_size)
                if digest not in present:
                    with fs.open_output_stream(f"{folder}/{CHUNKS}/{digest}") as out:
                        out.write(piece)
                    present.add(digest)
        write_whole(fs, f"{folder}/{MANIFEST}", json.dumps(ours).encode())
        self._delete_unlisted(fs, folder, set(hashes), set(stored["chunks"]) if stored else set())
        return True

    def _delete_unlisted(self, fs, folder: str, listed: set[str], before: set[str]) -> None:
        """Chunks the manifest no longer lists: those of the one it replaced, and once per
        process every unlisted chunk (an earlier driver stopped between chunks and manifest)."""
        import pyarrow.fs

        if not self._swept:
            self._swept = True
            found = fs.get_file_info(pyarrow.fs.FileSelector(f"{folder}/{CHUNKS}"))
            before |= {info.base_name for info in found}
        for digest in before - listed:
            with contextlib.suppress(FileNotFoundError):
                fs.delete_file(f"{folder}/{CHUNKS}/{digest}")


def restore(
    storage_root: str, name: str, database: str | Path, *, adopt: bool = False
) -> tuple[bool, str]:
    """Fetch sweep ``name``'s backup into ``database`` unless that file exists; returns whether
    it did and a line saying what happened. Raises ``BackupRefused`` (one line) for a backup of
    another sweep (unless ``adopt``) or a damaged one; ``database`` is left as it was then."""
    import pyarrow.fs

    database = Path(database)
    if database.is_file() and database.stat().st_size > 0:
        return False, f"kept the MLflow database {database} (it exists)"
    target = backup_uri(storage_root, name)
    fs, folder = open_uri(target)
    try:
        manifest = _read_manifest(fs, folder)
    except (ValueError, UnicodeDecodeError) as err:
        raise BackupRefused(f"{target}/{MANIFEST} is damaged ({err}): not restored") from None
    if manifest is None:
        legacy = under(SweepFolder(storage_root, name).root, LEGACY)
        lfs, lpath = open_uri(legacy)
        if lfs.get_file_info(lpath).type != pyarrow.fs.FileType.File:
            return False, f"{database}: no backup of sweep {name!r} in {target}: nothing restored"
        if not adopt:
            return False, (
                f"{database}: no backup of sweep {name!r} in {target}; {legacy} (the single "
                "backup of every sweep before per-sweep backups) may be another sweep's or "
                "cluster's: not restored (add --adopt to take it)"
            )
        _write_checked(database, lambda out: out.write(_read_all(lfs, lpath)))
        return True, f"restored the MLflow database {database} from {legacy} (adopted)"
    if manifest.get("sweep") != name and not adopt:
        raise BackupRefused(
            f"{target} holds the MLflow backup of sweep {manifest.get('sweep')!r}, not {name!r} "
            "(a copied or renamed folder?): not restored (add --adopt to take it)"
        )

    def get(digest: str) -> bytes | None:
        try:
            return _read_all(fs, f"{folder}/{CHUNKS}/{digest}")
        except FileNotFoundError:
            return None

    def fetch(out) -> None:
        size = 0
        with ThreadPoolExecutor(8) as pool:  # in order, eight at a time
            pieces = pool.map(get, manifest["chunks"])
            for digest, piece in zip(manifest["chunks"], pieces, strict=True):
                if piece is None:
                    raise BackupRefused(f"{target}: chunk {digest} is missing: not restored")
                if hashlib.sha256(piece).hexdigest() != digest:
                    raise BackupRefused(f"{target}: chunk {digest} is damaged: not restored")
                out.write(piece)
                size += len(piece)
        if size != manifest.get("size"):
            raise BackupRefused(f"{target}: {size} bytes, the manifest says {manifest.get('size')}")

    _write_checked(database, fetch)
    adopted = (
        f" (adopted from sweep {manifest.get('sweep')!r})" if manifest.get("sweep") != name else ""
    )
    taken = manifest.get("taken")
    return True, f"restored the MLflow database {database} from {target}, taken {taken}{adopted}"


def _read_all(fs, path: str) -> bytes:
    with fs.open_input_stream(path) as f:
        return f.read()


def _write_checked(database: Path, write) -> None:
    """``write(file)`` into a temporary file beside ``database``, renamed onto it once whole
    and a sqlite database; nothing is left behind otherwise."""
    database.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=database.parent, prefix=f".{database.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        with open(temporary, "rb") as f:
            if f.read(len(_SQLITE)) != _SQLITE:
                raise BackupRefused(
                    f"{database}: the backup is not a sqlite database: not restored"
                )
        os.replace(temporary, database)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["restore"])
    parser.add_argument("storage", help="the sweeps' storage root (what --storage-path gets)")
    parser.add_argument("name", help="the sweep's name (its --name): its folder holds the backup")
    parser.add_argument("database", help="where the sqlite file goes (kept if it exists)")
    parser.add_argument(
        "--adopt", action="store_true",
        help="take a backup that names another sweep, or the storage root's old single backup",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from sweeps.config.flags import _valid_name

    if not _valid_name(args.name, None):
        print(
            f"{PROG}: error: NAME: got {args.name!r}; allowed: the sweep's --name", file=sys.stderr
        )
        return 2
    try:
        _, line = restore(args.storage, args.name, args.database, adopt=args.adopt)
    except BackupRefused as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
