"""A sweep whose storage is S3: a local S3 endpoint (moto's server, on loopback) stands in for
the bucket of ``cluster/gpu.yaml``. Tune's checkpoints, the sweep's own files (the Optuna
journal included) and the report land in the bucket, and ``--resume`` finds the sweep there,
even without the journal's local copy (as on another machine).

pyarrow reads no endpoint from the environment, so the endpoint rides in the storage URI as
pyarrow's ``?endpoint_override=…&scheme=http`` options (the same works for MinIO or Ceph).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sweep_support import (
    child_runs,
    free_port,
    run_sweep,
    smoke_argv,
    storage,
    sweep_env,
    tracking_uri,
)

pytestmark = pytest.mark.slow
N = 2
BUCKET = "sweeps"
NAME = "s3-smoke"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """``host:port`` of a local S3 endpoint with an empty bucket; stopped by process group."""
    port = free_port()
    log = (tmp_path_factory.mktemp("s3") / "moto.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.time() + 60
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/{BUCKET}", method="PUT")
                urllib.request.urlopen(request, timeout=2).close()  # creates the bucket
                break
            except OSError:
                assert server.poll() is None, "the S3 endpoint exited at start"
                assert time.time() < deadline, "the S3 endpoint did not answer within 60 s"
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def sweep(tmp: Path, uri: str, *extra: str) -> subprocess.CompletedProcess:
    argv = smoke_argv(tmp, NAME, "--num-samples", str(N), "--storage-path", uri, *extra)
    # The local copy of the Optuna journal goes under HOME: keep it in the test's folder.
    return run_sweep(argv, tmp, sweep_env(HOME=str(tmp / "home"), **CREDENTIALS))


def bucket_files(endpoint: str) -> set[str]:
    import pyarrow.fs

    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", access_key="test", secret_key="test"
    )
    found = fs.get_file_info(pyarrow.fs.FileSelector(BUCKET, recursive=True))
    return {f.path.removeprefix(f"{BUCKET}/") for f in found if f.is_file}


def test_a_sweep_on_s3_storage_writes_there_and_resumes_from_there(tmp_path, endpoint):
    uri = f"s3://{BUCKET}/frontier?endpoint_override={endpoint}&scheme=http"
    done = sweep(tmp_path, uri)
    assert done.returncode == 0, done.stderr[-4000:]

    files = bucket_files(endpoint)
    root = f"frontier/{NAME}"
    names = (
        "sweep.json",
        "summary.json",
        "optuna.journal",
        "report/report.html",
        "report/frontier.json",
    )
    for name in names:
        assert f"{root}/{name}" in files, f"{name} is not in the bucket"
    assert any(f.startswith(f"{root}/experiment_state-") for f in files)  # Tune's own state
    trials = {f.split("/")[2] for f in files if f.endswith("/params.json")}
    assert len(trials) == N
    for trial in trials:  # each trial's final checkpoint holds its model and its result
        finals = [f for f in files if f.startswith(f"{root}/{trial}/checkpoint_")]
        assert any(f.endswith("/model/model.safetensors") for f in finals), trial
        assert any(f.endswith("/result.json") for f in finals), trial
    assert not storage(tmp_path).exists()  # nothing went to the local default
    assert (tmp_path / "reports" / NAME / "report.html").is_file()  # a local copy to open

    # Resume as another machine would: without this machine's copy of the Optuna journal.
    (journal,) = (tmp_path / "home" / ".betavae" / "studies").glob("*/optuna.journal")
    journal.unlink()
    again = sweep(tmp_path, uri, "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"{N} trials: {N} finished, 0 failed, 0 unfinished" in again.stdout

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    assert journal.is_file()  # fetched from the bucket
    study = optuna.load_study(
        study_name=NAME, storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * N

    runs = child_runs(tracking_uri(tmp_path), NAME)
    assert len(runs) == N  # the resume found the finished trials; none ran again
    assert {r.info.status for r in runs} == {"FINISHED"}
