"""A first-in-first-out queue of JSON records: bounded in memory, overflowing to a file.

The sweep's MLflow writer (``sweeps.tracking.writer``) queues what it has to record here and drains
it on a thread of its own, so a slow or absent tracking server never stalls Tune's loop. At
most ``memory_limit`` records are held in memory; past that, records are appended to
``path`` (one JSON line each) until the reader has caught up, so memory stays bounded however
long the server is away, and the order is kept: records in memory are always older than the
ones in the file.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

#: The ``op`` of what ``get`` returns for a line of the file that does not parse.
UNREADABLE = "unreadable"


class Spool:
    def __init__(self, path: str | Path, memory_limit: int = 1000) -> None:
        self.path = Path(path)
        self.memory_limit = memory_limit
        self._memory: deque[dict[str, Any]] = deque()
        self._on_disk = 0  # records in the file not yet read
        self._read_offset = 0
        self._unfinished = 0  # put and not yet marked done
        self._lock = threading.Condition()
        self.spilled = 0  # records that went through the file, in all

    def put(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str)
        with self._lock:
            if self._on_disk or len(self._memory) >= self.memory_limit:
                if not self._on_disk:  # a new overflow: start the file afresh
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self.path.write_text("")
                    self._read_offset = 0
                with self.path.open("a") as f:
                    f.write(line + "\n")
                self._on_disk += 1
                self.spilled += 1
            else:
                self._memory.append(json.loads(line))
            self._unfinished += 1
            self._lock.notify_all()

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The oldest record (None when none came within ``timeout`` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while not self._memory and not self._on_disk:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._lock.wait(left)
            if self._memory:
                return self._memory.popleft()
            try:
                with self.path.open() as f:
                    f.seek(self._read_offset)
                    line = f.readline()
                    self._read_offset = f.tell()
            except OSError as err:  # the file is gone or unreadable: what it held is lost
                lost, self._on_disk = self._on_disk, 0
                self._unfinished -= lost - 1  # the one returned is marked done by its reader
                self._lock.notify_all()
                return {"op": UNREADABLE, "line": f"{lost} record(s) lost with {self.path}: {err}"}
            self._on_disk -= 1
            if not self._on_disk:  # caught up: the file is done with
                self.path.unlink(missing_ok=True)
            try:
                return json.loads(line)
            except ValueError:  # a torn line (a full disk, a write cut short): it is lost
                return {"op": UNREADABLE, "line": line[:200]}

    def done(self) -> None:
        """Mark the last record got as handled (``join`` waits for every record)."""
        with self._lock:
            self._unfinished -= 1
            self._lock.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every record put has been handled; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._unfinished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._memory) + self._on_disk
