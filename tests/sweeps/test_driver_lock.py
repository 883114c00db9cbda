"""One driver per sweep (``sweeps.driver_lock``): a live holder is named and refused, a dead
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

from sweeps.command_line import parse_settings
from sweeps.driver_lock import STALE_S, DriverLease, SweepBusy
from sweeps.storage import read_text, write_text


def settings_for(storage: str):
    return parse_settings(["--preset", "smoke", "--name", "locked", "--storage-path", storage])


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def stale_lease(**values) -> str:
    lease = {"host": socket.gethostname(), "pid": dead_pid(), "pid_start": "1", "since": "then"}
    return json.dumps({**lease, "token": "old", "heartbeat": time.time(), **values})


@pytest.fixture(params=["local", "s3"])
def settings(request, tmp_path, monkeypatch):
    if request.param == "local":
        return settings_for(str(tmp_path / "ray_results"))
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"locks-{tmp_path.name}"
    return settings_for(f"s3://{BUCKET}/{prefix}?endpoint_override={endpoint}&scheme=http")


def test_a_second_driver_is_refused_naming_the_first(settings):
    with DriverLease(settings), pytest.raises(SweepBusy) as refused:
        DriverLease(settings).acquire()
    message = str(refused.value)
    assert f"host {socket.gethostname()}, pid {os.getpid()}, since " in message
    assert "\n" not in message
    assert read_text(settings, "driver.json") is None  # released at the end
    with DriverLease(settings):  # and free again
        pass


def test_a_driver_killed_with_sigkill_frees_the_sweep_at_once(settings):
    write_text(settings, "driver.json", stale_lease())
    with DriverLease(settings) as lease:
        assert json.loads(read_text(settings, "driver.json"))["token"] == lease.token


def test_another_machines_lease_holds_until_its_heartbeat_is_stale(settings):
    write_text(settings, "driver.json", stale_lease(host="elsewhere", pid=1))
    with pytest.raises(SweepBusy, match="host elsewhere, pid 1"):
        DriverLease(settings).acquire()
    old = time.time() - STALE_S - 1
    write_text(settings, "driver.json", stale_lease(host="elsewhere", pid=1, heartbeat=old))
    with DriverLease(settings):
        pass


def test_a_reused_pid_is_not_mistaken_for_the_driver(settings):
    # This process's pid, but a different start time: another process got the old pid.
    write_text(settings, "driver.json", stale_lease(pid=os.getpid(), pid_start="1"))
    with DriverLease(settings):
        pass
