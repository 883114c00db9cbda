"""The Optuna journal of a sweep on remote storage, durable after every change.

Optuna's journal is an append-only file of JSON lines, and its file backend needs a local
file. With remote storage the driver keeps that file on its own machine (a cache) and mirrors
it to the sweep folder as it grows: each ``sync`` writes the bytes appended since the last one
as one new object, ``optuna.journal.d/<offset>``, named by the byte offset where it starts.
Objects are never rewritten but by a retry of the same bytes (and more), so a driver killed at
any moment leaves a prefix of the journal in the bucket: every change synced before it died.

A driver on another machine (or a fresh HOME) rebuilds the local file from the objects before
it opens the study (``restore``). One ``JournalMirror`` per journal per process
(``mirror_for``), so the searcher, the MLflow writer's study link and the end of the sweep,
each with an Optuna storage of its own over the same file, sync in turn. Pickled, a mirror is
its remote URI only: the local copy is found again under the HOME of whoever unpickles it.

Measured against a local S3 endpoint (``bench/journal_sync.py``): see bench/RESULTS.md.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from sweeps.store.uri import open_for_small_writes

#: The folder of journal objects inside the sweep folder.
JOURNAL_OBJECTS = "optuna.journal.d"
_OFFSET_DIGITS = 16


def local_journal(remote: str) -> Path:
    """This machine's copy of the journal mirrored to ``remote`` (a URI without credentials):
    a folder of its own per sweep, under the current HOME."""
    key = hashlib.sha256(remote.encode()).hexdigest()[:16]
    return Path.home() / ".betavae" / "studies" / key / "optuna.journal"


class JournalMirror:
    """``remote``: the URI of the journal objects' folder (credentials come from the
    environment, as for the rest of the sweep's storage); ``local``: this machine's copy."""

    def __init__(self, remote: str) -> None:
        self.remote = remote
        self.local = local_journal(remote)
        self.synced: int | None = None  # bytes of ``local`` in the bucket (None: not read yet)
        self._lock = threading.Lock()
        self._fs = None

    def _filesystem(self):
        """``(filesystem, folder)``, opened once (``open_for_small_writes``)."""
        if self._fs is None:
            self._fs = open_for_small_writes(self.remote)
            fs, root = self._fs
            fs.create_dir(root, recursive=True)  # once: HDFS needs it, object stores shrug
        return self._fs

    # -- the objects ------------------------------------------------------------------------
    def _objects(self) -> list[tuple[int, str, int]]:
        """``(offset, path, size)`` of the journal's objects, by offset."""
        import pyarrow.fs

        fs, root = self._filesystem()
        found = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
        objects = [
            (int(info.base_name), info.path, int(info.size))
            for info in found
            if info.is_file and info.base_name.isdigit()
        ]
        return sorted(objects)

    def remote_size(self) -> int:
        """Bytes of the journal the objects hold from offset 0 without a gap."""
        size = 0
        for offset, _, length in self._objects():
            if offset > size:
                break
            size = max(size, offset + length)
        return size

    # -- this machine's copy ------------------------------------------------------------------
    def restore(self) -> bool:
        """Rebuild the local file from the objects when they hold more than it (a new machine,
        a fresh HOME, a copy older than the bucket's); True if it was rebuilt."""
        with self._lock:
            objects = self._objects()
            if not objects:
                self.synced = 0
                return False
            fs, _ = self._filesystem()
            size = self.local.stat().st_size if self.local.is_file() else 0
            chunks, end = [], 0
            for offset, path, _ in objects:
                if offset > end:
                    break  # a gap (an object lost): what follows cannot be placed
                with fs.open_input_stream(path) as f:
                    data = f.read()
                chunks.append(data[end - offset :])
                end = max(end, offset + len(data))
            if end <= size:
                self.synced = end
                return False
            self.local.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.local.with_name(self.local.name + ".restoring")
            temporary.write_bytes(b"".join(chunks))
            temporary.replace(self.local)
            self.synced = end
            return True

    def ready(self) -> None:
        """``restore`` once per process, before the local file is first opened."""
        if self.synced is None:
            self.restore()

    def sync(self) -> int:
        """Write the lines appended to the local file since the last sync as one object;
        returns the bytes written (0: nothing new)."""
        with self._lock:
            if self.synced is None:
                self.synced = self.remote_size()
            if not self.local.is_file():
                return 0
            with self.local.open("rb") as f:
                f.seek(self.synced)
                data = f.read()
            data = data[: data.rfind(b"\n") + 1]  # whole lines only: a write may be under way
            if not data:
                return 0
            fs, root = self._filesystem()
            with fs.open_output_stream(f"{root}/{self.synced:0{_OFFSET_DIGITS}d}") as out:
                out.write(data)
            self.synced += len(data)
            return len(data)

    def __reduce__(self):  # by its remote: the local copy is wherever this machine keeps it
        return (mirror_for, (self.remote,))


_MIRRORS: dict[str, JournalMirror] = {}
_MIRRORS_LOCK = threading.Lock()


def mirror_for(remote: str) -> JournalMirror:
    """This process's one mirror of the journal objects at ``remote``."""
    with _MIRRORS_LOCK:
        if remote not in _MIRRORS:
            _MIRRORS[remote] = JournalMirror(remote)
        return _MIRRORS[remote]
