"""One driver per sweep (``sweeps.store.lease``): a live holder is named and refused, a dead
one (killed with ``kill -9``) frees the sweep at once, on a local folder and on S3."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from sweep_support import BUCKET, CREDENTIALS

from sweeps.config import parse_settings
from sweeps.store import SweepFolder
from sweeps.store.lease import STALE_S, DriverLease, SweepBusy


def folder_for(storage: str):
    parsed = parse_settings(["--preset", "smoke", "--name", "locked", "--storage-path", storage])
    return SweepFolder(parsed.storage_path, parsed.name)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def stale_lease(**values) -> str:
    lease = {"host": socket.gethostname(), "pid": dead_pid(), "pid_start": "1", "since": "then"}
    return json.dumps({**lease, "token": "old", "heartbeat": time.time(), **values})


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path, monkeypatch):
    if request.param == "local":
        return folder_for(str(tmp_path / "ray_results"))
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"locks-{tmp_path.name}"
    return folder_for(f"s3://{BUCKET}/{prefix}?endpoint_override={endpoint}&scheme=http")


def test_a_second_driver_is_refused_naming_the_first(folder):
    with DriverLease(folder), pytest.raises(SweepBusy) as refused:
        DriverLease(folder).acquire()
    message = str(refused.value)
    assert f"host {socket.gethostname()}, pid {os.getpid()}, since " in message
    assert "\n" not in message
    assert folder.read_text("driver.json") is None  # released at the end
    with DriverLease(folder):  # and free again
        pass


def test_a_driver_killed_with_sigkill_frees_the_sweep_at_once(folder):
    folder.write_text("driver.json", stale_lease())
    with DriverLease(folder) as lease:
        assert json.loads(folder.read_text("driver.json"))["token"] == lease.token


def test_another_machines_lease_holds_until_its_heartbeat_is_stale(folder):
    folder.write_text("driver.json", stale_lease(host="elsewhere", pid=1))
    with pytest.raises(SweepBusy, match="host elsewhere, pid 1"):
        DriverLease(folder).acquire()
    old = time.time() - STALE_S - 1
    folder.write_text("driver.json", stale_lease(host="elsewhere", pid=1, heartbeat=old))
    with DriverLease(folder):
        pass


def test_a_reused_pid_is_not_mistaken_for_the_driver(folder):
    # This process's pid, but a different start time: another process got the old pid.
    folder.write_text("driver.json", stale_lease(pid=os.getpid(), pid_start="1"))
    with DriverLease(folder):
        pass
