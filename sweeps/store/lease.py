"""One driver per sweep: a lease in the sweep folder, ``driver.json``, naming who holds it.

A second driver on the same sweep (same storage and name), with or without ``--resume``, and a
``--rebuild-mlflow`` of it, are refused with one line naming the live one. A holder is live when:

- it runs on this machine and its process (pid and start time) still exists: a driver killed
  with ``kill -9`` frees the sweep at once;
- it runs on another machine and renewed the lease within ``STALE_S`` (a heartbeat thread
  renews it every ``HEARTBEAT_S``): a machine that vanished frees the sweep after that. The
  lease's age is read from the storage's clock alone: ``driver.json``'s modification time
  against that of a probe file, ``driver.json.clock``, written just before; so a host whose
  clock is off neither takes a live sweep nor waits on a dead one.

The lease is fenced: each renewal reads ``driver.json`` first, and once it names another driver
(one that judged this one stale: its machine was suspended, or cut off from the storage, for
``STALE_S``) or is gone, the heartbeat stops and calls ``on_displaced``. By default that prints
one line naming the new holder and ends this process at once with SIGKILL, within
``HEARTBEAT_S`` of coming back: a displaced driver must write nothing more (a graceful stop
would save Tune's state and end the MLflow parent over the new holder's), and a sweep survives
a driver's ``kill -9`` (the new holder resumes it). What it wrote to the sweep before it
noticed is not fenced: at most ``HEARTBEAT_S`` of Tune's own state saves.

Taking the lease cannot be won by two drivers:

- local folders: a ``flock``, which the kernel drops with the process, serialises the drivers;
- ``s3://`` with boto3 (``sweeps.store.versioned``): conditional writes. A driver creates the
  lease with ``If-None-Match: *`` and replaces a dead holder's, or renews its own, with
  ``If-Match`` on the ETag it read: of two drivers taking the same sweep exactly one write
  succeeds (the other is refused, naming it), and a takeover that lands between a renewal's
  read and write is never overwritten;
- other remote storage, or S3 without boto3 or on a store that does not honour conditional
  writes (found out by a probe): a driver writes its lease, waits ``SETTLE_S`` and reads it
  back; the later writer keeps it, the other one is refused. The bound on the race, on a store
  with read-after-write consistency (S3, GCS, Azure): two drivers can both win only if one of
  them took more than ``SETTLE_S`` from reading ``driver.json`` to its write landing, i.e. a
  storage request slower than ``SETTLE_S``. A renewal that overwrites a takeover in its
  read-to-write gap makes the taker's read-back fail (the taker is refused, the holder goes on)
  under the same bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analysis.schema import DRIVER_FILE
from sweeps.config.settings import PROG, UsageError
from sweeps.store.folder import SweepFolder
from sweeps.store.versioned import Conflict, Stored, versioned_file

HEARTBEAT_S = 30.0
STALE_S = 120.0
SETTLE_S = 1.0
_ATTEMPTS = 3  # takes in a row that lost a conditional write (each time to a dead holder)
_UNKNOWN = {"host": "?", "pid": "?", "since": "?"}


class SweepBusy(UsageError):
    """Another driver runs this sweep (exit 2, one line)."""


class _Displaced(Exception):
    """``driver.json`` no longer holds this driver's token; ``holder``: what it holds now."""

    def __init__(self, holder: dict[str, Any] | None) -> None:
        super().__init__(holder)
        self.holder = holder


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


def on_this_host(lease: dict[str, Any]) -> bool:
    return lease.get("host") == socket.gethostname()


def holder_alive(lease: dict[str, Any], age_s: float) -> bool:
    """Whether the driver named in ``lease`` still runs (see the module's rules). ``age_s``:
    seconds since its ``driver.json`` was written, by the storage's clock (unused for a holder
    on this machine, which is judged by its process)."""
    if on_this_host(lease):
        started = _process_start(int(lease.get("pid", -1)))
        return started is not None and started in ("?", lease.get("pid_start"))
    return age_s < STALE_S


def describe(lease: dict[str, Any]) -> str:
    return f"host {lease.get('host')}, pid {lease.get('pid')}, since {lease.get('since')}"


def _parse(stored: Stored | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    try:
        return json.loads(stored.text)
    except json.JSONDecodeError:  # torn by a driver killed mid-write: nobody holds it
        return None


class DriverLease:
    """``check()`` early (reads only), then held for the run: ``acquire()`` (or refuse),
    heartbeat, ``release()``.

    on_displaced: called (on the heartbeat's thread) with the new holder's lease, or None when
    ``driver.json`` was removed, once another driver has taken the sweep; by default this
    driver is killed (SIGKILL). then: what a refused user should do once the holder ended.
    """

    def __init__(
        self,
        folder: SweepFolder,
        *,
        on_displaced: Callable[[dict[str, Any] | None], None] | None = None,
        then: str = "pass --resume",
    ):
        self.folder = folder
        self.file = versioned_file(folder, DRIVER_FILE)
        self.on_displaced = on_displaced or self._stop_this_driver
        self.then = then
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
        return _parse(self.file.read())

    def _live_rival(self, stored: Stored | None) -> dict[str, Any] | None:
        """The lease in ``stored`` if another driver holds it and still runs, else None."""
        held = _parse(stored)
        if stored is None or held is None or held.get("token") == self.token:
            return None
        age = 0.0 if on_this_host(held) else self.file.now() - stored.modified
        return held if holder_alive(held, age) else None

    def _refuse(self, lease: dict[str, Any]) -> SweepBusy:
        return SweepBusy(
            f"--name: sweep {self.folder.name!r} is being run by another driver ("
            f"{describe(lease)}); wait for it to end, or stop it, then {self.then}"
        )

    # -- taking and keeping ------------------------------------------------------------
    def check(self) -> None:
        """Refuse now if a live driver holds the sweep; writes nothing (``acquire`` takes it)
        but, to judge another machine's lease, the clock probe."""
        lock_file = Path(f"{self.folder.path}/{DRIVER_FILE}.lock")
        if self.folder.is_local and lock_file.is_file():  # else: never held here
            self._lock_local()
            self._unlock_local()
        rival = self._live_rival(self.file.read())
        if rival is not None:
            raise self._refuse(rival)

    def acquire(self) -> None:
        if self.folder.is_local:
            self._lock_local()
        try:
            self._take()
        except BaseException:
            self._unlock_local()
            raise
        self._thread = threading.Thread(target=self._beat, name="driver-lease", daemon=True)
        self._thread.start()

    def _take(self) -> None:
        settle = not self.folder.is_local and not self.file.conditional
        for _ in range(_ATTEMPTS):
            stored = self.file.read()
            rival = self._live_rival(stored)
            if rival is not None:
                raise self._refuse(rival)
            try:  # conditional: only over the version just judged (or none)
                self.file.write(self._text(), expect=stored)
                break
            except Conflict:  # another driver wrote it since: judge that one
                continue
        else:
            raise self._refuse(self.current() or _UNKNOWN)
        if settle:
            time.sleep(SETTLE_S)  # another driver's write in the same instant wins or loses here
            held = self.current()
            if held is None or held.get("token") != self.token:
                raise self._refuse(held or _UNKNOWN)

    def _text(self) -> str:
        # "heartbeat" (this host's clock) is for people reading the file; staleness is judged
        # by the file's modification time.
        return json.dumps({**self.lease, "heartbeat": time.time()})

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._renew()
            except _Displaced as lost:
                if not self._stop.is_set():  # not this driver's own release
                    self.on_displaced(lost.holder)
                return
            except Exception:  # a storage hiccup: the next beat retries
                continue

    def _renew(self) -> None:
        """Write the lease again if ``driver.json`` still names this driver; on S3 only over
        the version just read, so a takeover in between is not overwritten."""
        stored = self.file.read()
        held = _parse(stored)
        if held is None or held.get("token") != self.token:
            raise _Displaced(held)
        try:
            self.file.write(self._text(), expect=stored)
        except Conflict:
            raise _Displaced(self.current()) from None

    def _stop_this_driver(self, holder: dict[str, Any] | None) -> None:
        name = self.folder.name
        if holder is None:
            what = f"the lease of sweep {name!r} ({DRIVER_FILE}) was removed while this driver ran"
            then = "--resume continues the sweep"
        else:
            what = f"another driver took sweep {name!r} over ({describe(holder)})"
            then = "that driver runs the sweep now"
        print(f"{PROG}: error: {what}; this one stops now: {then}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # nothing more written (see the module's text)

    def release(self) -> None:
        """Give the sweep up (nothing to do if this driver never took it)."""
        if self._thread is None and self._flock is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            stored = self.file.read()
            held = _parse(stored)
            if stored is not None and held is not None and held.get("token") == self.token:
                self.file.delete(stored)
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
            raise self._refuse(self.current() or _UNKNOWN) from None

    def _unlock_local(self) -> None:
        if self._flock is not None:
            self._flock.close()  # closing drops the flock
            self._flock = None

    def __enter__(self) -> DriverLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
