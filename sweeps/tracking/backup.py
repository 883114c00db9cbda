"""A sqlite MLflow store that outlives its machine: copied to the sweep's storage as trials end.

On a cluster the sqlite file lives on the head; ``ray down``, a replaced head or the end of a
RayJob takes it away, while the sweep's storage (S3) stays. The driver copies the database
there after every trial that ends and when the sweep ends, with sqlite's online backup (a
consistent copy while the MLflow server keeps writing), to ``STORAGE/_mlflow/mlflow.db``.
A new head restores it before its MLflow server starts:

    python -m sweeps.tracking.backup restore s3://bucket/betavae/sweeps /home/ray/mlflow/mlflow.db

(``cluster/gpu.yaml`` does). Which file is backed up: ``--mlflow-backup PATH``
(``BETAVAE_MLFLOW_BACKUP``); by default the database of a ``sqlite:///`` tracking URI when the
sweep's storage is remote. A managed database (``postgresql://`` on RDS) needs none of this.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
from pathlib import Path

from sweeps.store.uri import open_uri

BACKUP_DIR = "_mlflow"
BACKUP_NAME = "mlflow.db"


def backup_uri(storage_root: str) -> str:
    base, mark, options = storage_root.partition("?")
    return f"{base.rstrip('/')}/{BACKUP_DIR}/{BACKUP_NAME}{mark}{options}"


class DatabaseBackup:
    """Copies ``database`` to ``backup_uri(storage_root)``; ``copy()`` is thread-safe."""

    def __init__(self, database: str | Path, storage_root: str) -> None:
        self.database = Path(database)
        self.target = backup_uri(storage_root)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"database": self.database, "target": self.target}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def copy(self) -> None:
        import pyarrow.fs

        if not self.database.is_file():
            return
        with self._lock, tempfile.TemporaryDirectory() as tmp:
            snapshot = Path(tmp) / BACKUP_NAME
            source = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
            try:
                with sqlite3.connect(snapshot) as copy:
                    source.backup(copy)
            finally:
                source.close()
            fs, path = open_uri(self.target)
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
            pyarrow.fs.copy_files(
                str(snapshot), path,
                source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs,
            )  # fmt: skip


def restore(storage_root: str, database: str | Path) -> bool:
    """Fetch the backup into ``database`` unless that file exists; True if restored."""
    import pyarrow.fs

    database = Path(database)
    if database.is_file() and database.stat().st_size > 0:
        return False
    fs, path = open_uri(backup_uri(storage_root))
    if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
        return False
    database.parent.mkdir(parents=True, exist_ok=True)
    pyarrow.fs.copy_files(
        path, str(database.resolve()),
        source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem(),
    )  # fmt: skip
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeps.tracking.backup", description=__doc__)
    parser.add_argument("action", choices=["restore"])
    parser.add_argument("storage", help="the sweeps' storage root (what --storage-path gets)")
    parser.add_argument("database", help="where the sqlite file goes (kept if it exists)")
    args = parser.parse_args(argv)
    done = restore(args.storage, args.database)
    print(f"{args.database}: {'restored from the backup' if done else 'kept (or no backup)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
