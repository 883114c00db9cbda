"""One driver per sweep: a lease in the sweep folder, ``driver.json``, naming who holds it.

A second driver on the same sweep (same storage and name), with or without ``--resume``, is
refused with one line naming the live one. A holder is live when:

- it runs on this machine and its process (pid and start time) still exists: a driver killed
  with ``kill -9`` frees the sweep at once;
- it runs on another machine and renewed the lease within ``STALE_S`` (a heartbeat thread
  renews it every ``HEARTBEAT_S``): a machine that vanished frees the sweep after that.

Local folders are also locked with ``flock``, which the kernel drops with the process, so two
drivers starting at the same instant cannot both win. Remote storage (``s3://``…) has no lock:
a driver writes its lease, waits ``SETTLE_S``, and reads it back; the later writer keeps it,
the other one is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analysis.schema import DRIVER_FILE
from sweeps.config.settings import UsageError
from sweeps.store.folder import SweepFolder

HEARTBEAT_S = 30.0
STALE_S = 120.0
SETTLE_S = 1.0


class SweepBusy(UsageError):
    """Another driver runs this sweep (exit 2, one line)."""


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), so a
    reused pid is not mistaken for the driver; None when no such process exists."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return "?"
        return "?"  # no /proc (macOS): the pid exists, its start time is unknown
    return stat.rsplit(")", 1)[1].split()[19]


def holder_alive(lease: dict[str, Any], now: float | None = None) -> bool:
    """Whether the driver named in ``lease`` still runs (see the module's rules)."""
    if lease.get("host") == socket.gethostname():
        started = _process_start(int(lease.get("pid", -1)))
        return started is not None and started in ("?", lease.get("pid_start"))
    now = time.time() if now is None else now
    return now - float(lease.get("heartbeat", 0)) < STALE_S


def describe(lease: dict[str, Any]) -> str:
    return f"host {lease.get('host')}, pid {lease.get('pid')}, since {lease.get('since')}"


class DriverLease:
    """``check()`` early (reads only), then held for the run: ``acquire()`` (or refuse),
    heartbeat, ``release()``."""

    def __init__(self, folder: SweepFolder):
        self.folder = folder
        self.token = uuid.uuid4().hex
        self._flock: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        pid = os.getpid()
        self.lease = {
            "host": socket.gethostname(),
            "pid": pid,
            "pid_start": _process_start(pid),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "token": self.token,
        }

    # -- reading -----------------------------------------------------------------------
    def current(self) -> dict[str, Any] | None:
        text = self.folder.read_text(DRIVER_FILE)
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:  # torn by a driver killed mid-write: nobody holds it
            return None

    def _refuse(self, lease: dict[str, Any]) -> SweepBusy:
        return SweepBusy(
            f"--name: sweep {self.folder.name!r} is being run by another driver ("
            f"{describe(lease)}); wait for it to end, or stop it, then pass --resume"
        )

    # -- taking and keeping ------------------------------------------------------------
    def check(self) -> None:
        """Refuse now if a live driver holds the sweep; writes nothing (``acquire`` takes it)."""
        lock_file = Path(f"{self.folder.path}/{DRIVER_FILE}.lock")
        if self.folder.is_local and lock_file.is_file():  # else: never held here
            self._lock_local()
            self._unlock_local()
        held = self.current()
        if held is not None and held.get("token") != self.token and holder_alive(held):
            raise self._refuse(held)

    def acquire(self) -> None:
        if self.folder.is_local:
            self._lock_local()
        held = self.current()
        if held is not None and held.get("token") != self.token and holder_alive(held):
            self._unlock_local()
            raise self._refuse(held)
        self._write()
        if not self.folder.is_local:
            time.sleep(SETTLE_S)  # another driver's write in the same instant wins or loses here
            held = self.current()
            if held is not None and held.get("token") != self.token:
                raise self._refuse(held)
        self._thread = threading.Thread(target=self._beat, name="driver-lease", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        self.folder.write_text(DRIVER_FILE, json.dumps({**self.lease, "heartbeat": time.time()}))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):  # a storage hiccup: the next beat retries
                self._write()

    def release(self) -> None:
        """Give the sweep up (nothing to do if this driver never took it)."""
        if self._thread is None and self._flock is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            held = self.current()
            if held is not None and held.get("token") == self.token:
                self.folder.delete(DRIVER_FILE)
        self._unlock_local()

    # -- the local flock ---------------------------------------------------------------
    def _lock_local(self) -> None:
        import fcntl

        Path(self.folder.path).mkdir(parents=True, exist_ok=True)
        self._flock = open(f"{self.folder.path}/{DRIVER_FILE}.lock", "a")  # noqa: SIM115
        try:
            fcntl.flock(self._flock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._flock.close()
            self._flock = None
            held = self.current() or {"host": "?", "pid": "?", "since": "?"}
            raise self._refuse(held) from None

    def _unlock_local(self) -> None:
        if self._flock is not None:
            self._flock.close()  # closing drops the flock
            self._flock = None

    def __enter__(self) -> DriverLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
