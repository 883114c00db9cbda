"""One driver per sweep (``sweeps.store.lease``): a live holder is named and refused, a dead
one (killed with ``kill -9``) frees the sweep at once, on a local folder and on S3. The lease is
fenced: a displaced driver stops, staleness is read from the storage's clock, two drivers
taking the sweep at once cannot both win, and ``--rebuild-mlflow`` takes the lease too."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from sweep_support import BUCKET, CREDENTIALS

from sweeps.config import parse_settings
from sweeps.store import SweepFolder
from sweeps.store import lease as lease_module
from sweeps.store.lease import STALE_S, DriverLease, SweepBusy, holder_alive
from sweeps.store.versioned import S3File

DAY_S = 86400.0


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


def elsewhere(**values) -> str:
    """The lease of a driver on another machine (judged by its age, not its process)."""
    return stale_lease(host="elsewhere", pid=1, **values)


@pytest.fixture
def s3_folder(request, tmp_path, monkeypatch):
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"locks-{tmp_path.name}"
    return folder_for(f"s3://{BUCKET}/{prefix}?endpoint_override={endpoint}&scheme=http")


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path):
    if request.param == "local":
        return folder_for(str(tmp_path / "ray_results"))
    return request.getfixturevalue("s3_folder")


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


def test_a_reused_pid_is_not_mistaken_for_the_driver(folder):
    # This process's pid, but a different start time: another process got the old pid.
    folder.write_text("driver.json", stale_lease(pid=os.getpid(), pid_start="1"))
    with DriverLease(folder):
        pass


# -- staleness, by the storage's clock ---------------------------------------------------


def test_another_machines_lease_is_live_until_stale_by_its_age():
    assert holder_alive(json.loads(elsewhere()), age_s=STALE_S - 1)
    assert not holder_alive(json.loads(elsewhere()), age_s=STALE_S + 1)


def test_another_machines_lease_is_aged_by_the_storages_clock(folder, monkeypatch):
    """Fresh by the storage's clock, it holds though this host's clock runs a day ahead; stale
    by it, it frees the sweep though this host's clock runs a day behind."""
    # S3 keeps modification times to the second: 2.5 s tells fresh (read within 1.5 s: aged at
    # most 2 s) from stale (read after 3.1 s: aged at least 3 s).
    monkeypatch.setattr(lease_module, "STALE_S", 2.5)
    real_time = time.time
    folder.write_text("driver.json", elsewhere())  # its "heartbeat" says: now, by this host
    monkeypatch.setattr(time, "time", lambda: real_time() + DAY_S)
    with pytest.raises(SweepBusy, match="host elsewhere, pid 1"):
        DriverLease(folder).check()
    with pytest.raises(SweepBusy, match="host elsewhere, pid 1"):
        DriverLease(folder).acquire()
    time.sleep(3.1)
    monkeypatch.setattr(time, "time", lambda: real_time() - DAY_S)
    with DriverLease(folder) as lease:
        assert json.loads(folder.read_text("driver.json"))["token"] == lease.token


# -- fencing: a displaced driver stops -------------------------------------------------


def test_a_displaced_driver_stops_renewing_and_is_told(folder, monkeypatch):
    monkeypatch.setattr(lease_module, "HEARTBEAT_S", 0.05)
    told: queue.Queue = queue.Queue()
    with DriverLease(folder, on_displaced=told.put) as first:
        folder.write_text("driver.json", elsewhere(token="taker"))  # it judged us stale
        assert told.get(timeout=10)["token"] == "taker"
        first._thread.join(timeout=5)
        assert not first._thread.is_alive()  # no more renewals
        time.sleep(0.3)  # six heartbeats' worth
        assert json.loads(folder.read_text("driver.json"))["token"] == "taker"
    assert json.loads(folder.read_text("driver.json"))["token"] == "taker"  # not released


HOLD_AND_BEAT = """
import sys, time
from sweeps.store import lease, SweepFolder
lease.HEARTBEAT_S = 0.1
with lease.DriverLease(SweepFolder(sys.argv[1], "locked")):
    print("held", flush=True)
    time.sleep(60)
"""


def test_by_default_a_displaced_driver_is_killed_at_once(tmp_path):
    """A real driver process: once another one holds the sweep it dies (SIGKILL, nothing
    more written), after one line naming the new holder."""
    storage = str(tmp_path / "ray_results")
    driver = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_BEAT, storage],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert driver.stdout.readline().strip() == "held"
    SweepFolder(storage, "locked").write_text("driver.json", elsewhere(token="taker"))
    _, err = driver.communicate(timeout=30)
    assert driver.returncode == -signal.SIGKILL
    (line,) = err.strip().splitlines()
    assert "another driver took sweep 'locked' over (host elsewhere, pid 1, since then)" in line


def test_a_takeover_between_a_renewals_read_and_write_is_not_overwritten_on_s3(
    s3_folder, monkeypatch
):
    """The renewal is written only over the version it read (``If-Match``)."""
    monkeypatch.setattr(lease_module, "HEARTBEAT_S", 0.05)
    told: queue.Queue = queue.Queue()
    with DriverLease(s3_folder, on_displaced=told.put) as first:
        read, taken = first.file.read, threading.Event()

        def read_then_taken_over():
            stored = read()
            if not taken.is_set():  # another driver's takeover lands right after this read
                taken.set()
                s3_folder.write_text("driver.json", elsewhere(token="taker"))
            return stored

        first.file.read = read_then_taken_over
        assert told.get(timeout=10)["token"] == "taker"
    assert json.loads(s3_folder.read_text("driver.json"))["token"] == "taker"


# -- taking the sweep at the same instant ----------------------------------------------


def take_at_once(folder, monkeypatch) -> list[DriverLease | SweepBusy]:
    """Two drivers take the sweep, both having read ``driver.json`` before either writes."""
    both_read = threading.Barrier(2, timeout=30)
    waited: set[str] = set()
    read = S3File.read

    def read_together(self):
        stored = read(self)
        driver = threading.current_thread().name
        if driver.startswith("racing-") and driver not in waited:  # a driver's first read
            waited.add(driver)
            both_read.wait()
        return stored

    monkeypatch.setattr(S3File, "read", read_together)
    outcomes: list[DriverLease | SweepBusy] = []

    def take() -> None:
        lease = DriverLease(folder)
        try:
            lease.acquire()
            outcomes.append(lease)
        except SweepBusy as refused:
            outcomes.append(refused)

    drivers = [threading.Thread(target=take, name=f"racing-{n}", daemon=True) for n in range(2)]
    for driver in drivers:
        driver.start()
    for driver in drivers:
        driver.join(timeout=60)
    for outcome in outcomes:
        if isinstance(outcome, DriverLease):
            outcome.release()
    return outcomes


@pytest.mark.parametrize("before", ["absent", "dead"])
def test_two_drivers_taking_the_sweep_at_once_on_s3_exactly_one_wins(
    s3_folder, monkeypatch, before
):
    """Conditional writes (moto honours them): the loser's write, create-only or over the dead
    driver's version, is refused, with no settle time to win or lose by."""
    assert DriverLease(s3_folder).file.conditional
    if before == "dead":  # a dead driver's lease, replaced over its version
        s3_folder.write_text("driver.json", stale_lease())
    monkeypatch.setattr(lease_module, "SETTLE_S", 3600.0)  # never waited for
    outcomes = take_at_once(s3_folder, monkeypatch)
    assert sorted(type(o).__name__ for o in outcomes) == ["DriverLease", "SweepBusy"]
    (refused,) = [o for o in outcomes if isinstance(o, SweepBusy)]
    assert f"pid {os.getpid()}" in str(refused)


def test_without_conditional_writes_the_later_of_two_drivers_keeps_the_sweep(
    s3_folder, monkeypatch
):
    """A store that does not honour conditional writes: write, settle, read back."""
    monkeypatch.setattr(S3File, "conditional", False)
    monkeypatch.setattr(lease_module, "SETTLE_S", 0.5)
    outcomes = take_at_once(s3_folder, monkeypatch)
    assert sorted(type(o).__name__ for o in outcomes) == ["DriverLease", "SweepBusy"]


@pytest.mark.parametrize("store", ["rejects", "ignores"])
def test_a_store_without_conditional_writes_is_found_out(s3_folder, monkeypatch, store):
    """Some S3-compatible stores answer conditional writes with 501, or ignore them: the probe
    sees it, and the lease settles and reads back instead."""
    from botocore.exceptions import ClientError

    file = DriverLease(s3_folder).file
    put = file.client.put_object

    def put_without_conditions(**request):
        conditional = request.pop("IfNoneMatch", None) or request.pop("IfMatch", None)
        if conditional and store == "rejects":
            answer = {
                "Error": {"Code": "NotImplemented"},
                "ResponseMetadata": {"HTTPStatusCode": 501},
            }
            raise ClientError(answer, "PutObject")
        return put(**request)

    monkeypatch.setattr(file.client, "put_object", put_without_conditions)
    assert file.conditional is False
    monkeypatch.setattr(lease_module, "SETTLE_S", 0.0)
    lease = DriverLease(s3_folder)
    lease.file = file
    with lease:
        assert json.loads(s3_folder.read_text("driver.json"))["token"] == lease.token


# -- --rebuild-mlflow holds the lease ---------------------------------------------------


def rebuild_argv(folder, tmp_path) -> list[str]:
    parsed = parse_settings(["--preset", "smoke", "--name", "locked",
                             "--storage-path", folder.storage_path])  # fmt: skip
    folder.write_text("sweep.json", json.dumps({"settings": parsed.to_dict()}))
    return ["--name", "locked", "--storage-path", folder.storage_path, "--rebuild-mlflow",
            "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]  # fmt: skip


def stub_rebuild(monkeypatch, folder) -> list[str | None]:
    """What a rebuild would write, replaced by reading the lease while it runs."""
    from sweeps.driver import rebuild

    seen: list[str | None] = []

    def rebuilt(settings, folder_):
        seen.append(folder_.read_text("driver.json"))
        return {"trials": 0, "runs_before": 0, "runs_after": 0, "experiment_id": "1"}

    monkeypatch.setattr(rebuild, "_rebuild", rebuilt)
    return seen


def test_rebuild_mlflow_is_refused_while_a_driver_runs_the_sweep(
    folder, tmp_path, monkeypatch, capsys
):
    from sweeps.beta_frontier import main

    argv = rebuild_argv(folder, tmp_path)
    seen = stub_rebuild(monkeypatch, folder)
    with DriverLease(folder), pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert seen == []  # nothing rebuilt
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"is being run by another driver (host {socket.gethostname()}, pid " in line
    assert line.endswith("then run --rebuild-mlflow again")


def test_rebuild_mlflow_holds_the_lease_while_it_writes(folder, tmp_path, monkeypatch):
    from sweeps.beta_frontier import main

    argv = rebuild_argv(folder, tmp_path)
    seen = stub_rebuild(monkeypatch, folder)
    assert main(argv) == 0
    (held,) = seen
    assert json.loads(held)["pid"] == os.getpid()
    assert folder.read_text("driver.json") is None  # released
