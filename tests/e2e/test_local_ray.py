"""A driver-started local Ray is the sweep's own (``sweeps.driver.preflight.ray_address``):
two local sweeps at once each run their own Ray, and after a driver killed alone with
``kill -9`` (its Ray's processes left behind) the next ``--resume`` starts at once. Both with
the address file an earlier ``ray start`` left behind (its cluster long gone), as on a
developer's machine: Ray itself would try that address once another Ray runs here."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sweep_support import child_runs, run_sweep, smoke_argv, storage, sweep_env, tracking_uri

pytestmark = pytest.mark.slow
N = 2


@pytest.fixture
def ray_tmpdir():
    """Ray's temporary folder for these sweeps (short: Ray's socket paths must fit in 107
    bytes), holding a stale ``ray_current_cluster``."""
    folder = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    (folder / "ray").mkdir()
    (folder / "ray" / "ray_current_cluster").write_text("127.0.0.1:1")  # nothing serves it
    yield str(folder)
    shutil.rmtree(folder, ignore_errors=True)


def popen(tmp: Path, ray_tmpdir: str, name: str, *extra: str) -> subprocess.Popen:
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen(
        smoke_argv(tmp, name, "--num-samples", str(N), *extra),
        cwd=tmp,
        env=sweep_env(RAY_TMPDIR=ray_tmpdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def raylets_of(pid: int) -> list[int]:
    """The raylet processes whose session a driver ``pid`` started (Ray names the session
    after the driver's pid)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if Path(args[0]).name == "raylet" and any(a.endswith(f"_{pid}") for a in args):
            found.append(int(cmdline.parent.name))
    return found


def test_two_local_sweeps_at_once_each_run_their_own_ray(tmp_path, ray_tmpdir):
    first = popen(tmp_path / "a", ray_tmpdir, "first")
    time.sleep(5)  # the first one's Ray is up, or starting, when the second looks
    second = popen(tmp_path / "b", ray_tmpdir, "second")
    outs = [p.communicate(timeout=600) for p in (first, second)]
    for process, (_, err) in zip((first, second), outs, strict=True):
        assert process.returncode == 0, err[-3000:]
    for folder, name in ((tmp_path / "a", "first"), (tmp_path / "b", "second")):
        runs = child_runs(tracking_uri(folder), name)
        assert len(runs) == N and all(r.info.status == "FINISHED" for r in runs)


def test_a_driver_killed_alone_is_resumed_at_once_beside_its_ray_leftovers(tmp_path, ray_tmpdir):
    first = popen(tmp_path, ray_tmpdir, "orphan")
    sweep = storage(tmp_path) / "orphan"
    deadline = time.time() + 300
    while time.time() < deadline and not list(sweep.glob("*/checkpoint_000000")):
        assert first.poll() is None, first.communicate()[1][-3000:]
        time.sleep(0.1)
    leftovers = raylets_of(first.pid)
    assert leftovers, "the driver's own Ray was not found"
    os.kill(first.pid, signal.SIGKILL)  # the driver only, as a user's kill -9 does
    first.communicate()
    assert all(Path(f"/proc/{pid}").exists() for pid in leftovers)  # its Ray lingers
    started = time.monotonic()
    resumed = run_sweep(
        smoke_argv(tmp_path, "orphan", "--num-samples", str(N), "--resume"),
        tmp_path,
        sweep_env(RAY_TMPDIR=ray_tmpdir),
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    runs = child_runs(tracking_uri(tmp_path), "orphan")
    assert len(runs) == N and all(r.info.status == "FINISHED" for r in runs)
    print(f"resumed beside the leftovers in {time.monotonic() - started:.0f} s")
