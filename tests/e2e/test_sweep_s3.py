"""A sweep whose storage is S3: a local S3 s3_endpoint (moto's server, on loopback) stands in for
the bucket of ``cluster/gpu.yaml``. Tune's checkpoints, the sweep's own files (the Optuna
journal included) and the report land in the bucket, and ``--resume`` finds the sweep there,
even without the journal's local copy (as on another machine).

pyarrow reads no s3_endpoint from the environment, so the s3_endpoint rides in the storage URI as
pyarrow's ``?endpoint_override=…&scheme=http`` options (the same works for MinIO or Ceph).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sweep_support import (
    BUCKET,
    CREDENTIALS,
    child_runs,
    run_sweep,
    smoke_argv,
    storage,
    sweep_env,
    tracking_uri,
)

pytestmark = pytest.mark.slow
N = 2
NAME = "s3-smoke"


def sweep_argv(tmp: Path, uri: str, *extra: str) -> list[str]:
    return smoke_argv(tmp, NAME, "--num-samples", str(N), "--storage-path", uri, *extra)


def sweep(tmp: Path, uri: str, *extra: str) -> subprocess.CompletedProcess:
    # The local copy of the Optuna journal goes under HOME: keep it in the test's folder.
    env = sweep_env(HOME=str(tmp / "home"), **CREDENTIALS)
    return run_sweep(sweep_argv(tmp, uri, *extra), tmp, env)


SECRET = "hunter2secret"


def assert_no_secret(tmp: Path, endpoint: str, output: str) -> None:
    """The secret is nowhere: output, the bucket's files, the local report, MLflow, Optuna."""
    import pyarrow.fs

    assert SECRET not in output
    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=endpoint, scheme="http", access_key="test", secret_key="test"
    )
    for name in bucket_files(endpoint):
        if name.endswith((".json", ".html", ".md", ".journal", ".csv")) or "journal.d/" in name:
            with fs.open_input_stream(f"{BUCKET}/{name}") as f:
                assert SECRET.encode() not in f.read(), name
    for path in (tmp / "reports").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(tmp))
    for run in client.search_runs([client.get_experiment_by_name(NAME).experiment_id]):
        assert SECRET not in repr(run.data.params) + repr(run.data.tags), run.info.run_name
    (journal,) = (tmp / "home" / ".betavae" / "studies").glob("*/optuna.journal")
    assert SECRET not in journal.read_text()


def bucket_files(s3_endpoint: str) -> set[str]:
    import pyarrow.fs

    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=s3_endpoint, scheme="http", access_key="test", secret_key="test"
    )
    found = fs.get_file_info(pyarrow.fs.FileSelector(BUCKET, recursive=True))
    return {f.path.removeprefix(f"{BUCKET}/") for f in found if f.is_file}


def test_a_sweep_on_s3_storage_writes_there_and_resumes_from_there(tmp_path, s3_endpoint):
    uri = f"s3://{BUCKET}/frontier?endpoint_override={s3_endpoint}&scheme=http"
    # The first run reaches the bucket with credentials inside the URI, none in the
    # environment: they must work, and never be written or printed anywhere.
    with_secret = uri.replace("s3://", f"s3://test:{SECRET}@")
    env = {k: v for k, v in sweep_env(HOME=str(tmp_path / "home")).items() if "AWS" not in k}
    done = run_sweep(sweep_argv(tmp_path, with_secret), tmp_path, env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert_no_secret(tmp_path, s3_endpoint, done.stdout + done.stderr)

    files = bucket_files(s3_endpoint)
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
    # The bucket is the session's: other tests' sweeps live beside this one.
    trials = {f.split("/")[2] for f in files if f.startswith(root) and f.endswith("/params.json")}
    assert len(trials) == N
    for trial in trials:  # a finished trial keeps its final checkpoint only (pruned on S3)
        finals = [f for f in files if f.startswith(f"{root}/{trial}/checkpoint_")]
        assert len({f.split("/")[3] for f in finals}) == 1, finals
        # ... with its result and its weights, not its optimiser state. The weights stay on
        # the bucket: MLflow's artifacts are on this machine's disk (file:), which a new head
        # would not have.
        assert any(f.endswith("/result.json") for f in finals), trial
        assert any(f.endswith("/model/model.safetensors") for f in finals), trial
        assert not any(f.endswith(("/weights.json", "/trainer_state.pt")) for f in finals)
    assert not storage(tmp_path).exists()  # nothing went to the local default
    assert (tmp_path / "reports" / NAME / "report.html").is_file()  # a local copy to open

    # Resume as another machine would: without this machine's copy of the Optuna journal.
    (journal,) = (tmp_path / "home" / ".betavae" / "studies").glob("*/optuna.journal")
    journal.unlink()
    # While a driver holds the sweep a second one is refused, naming it; kill -9 frees it.
    holder = subprocess.Popen(
        sweep_argv(tmp_path, uri, "--resume"),
        cwd=tmp_path,
        env=sweep_env(HOME=str(tmp_path / "home"), **CREDENTIALS),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while f"{root}/driver.json" not in bucket_files(s3_endpoint):
        assert holder.poll() is None and time.time() < deadline, "no lease in the bucket"
        time.sleep(0.2)
    second = sweep(tmp_path, uri, "--resume")
    assert holder.poll() is None, "the first driver ended before the second one was refused"
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"pid {holder.pid}," in second.stderr.strip().splitlines()[-1]
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    # The sqlite MLflow store was copied to the sweep's folder in the bucket (a manifest and
    # its chunks): a machine without it (a new head) gets it back before the sweep goes on.
    files = bucket_files(s3_endpoint)
    assert f"{root}/_mlflow/manifest.json" in files
    assert any(f.startswith(f"{root}/_mlflow/chunks/") for f in files)
    assert "frontier/_mlflow/mlflow.db" not in files  # no longer one copy per storage root
    (tmp_path / "mlflow.db").unlink()
    again = sweep(tmp_path, uri, "--resume")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "restored the MLflow database" in again.stderr
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


def test_a_driver_killed_on_s3_resumes_on_a_new_machine_and_the_stores_agree(tmp_path, s3_endpoint):
    """``kill -9`` while trials run, then ``--resume`` from a fresh HOME (the journal's local
    copy gone, as on a new head; only the bucket and the MLflow store remain): Tune, Optuna and
    MLflow agree, with nothing lost and nothing duplicated."""
    import json

    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from analysis.schema import ERROR_TAG, LOST_ATTR
    from sweeps.search.study import LOST_REASON

    name, trials = "s3-killed", 6
    uri = f"s3://{BUCKET}/killed?endpoint_override={s3_endpoint}&scheme=http"
    argv = smoke_argv(tmp_path, name, "--num-samples", str(trials), "--replicates", "1",
                      "--storage-path", uri)  # fmt: skip
    first = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=sweep_env(HOME=str(tmp_path / "home-1"), **CREDENTIALS),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while True:  # two trials finished (their final checkpoint is the third): kill the driver
        finals = [  # this sweep's only: the bucket is the session's
            f
            for f in bucket_files(s3_endpoint)
            if f.startswith(f"killed/{name}/") and f.endswith("/checkpoint_000002/result.json")
        ]
        if len(finals) >= 2:
            break
        assert first.poll() is None and time.time() < deadline, "no two trials finished"
        time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    env = sweep_env(HOME=str(tmp_path / "home-2"), **CREDENTIALS)  # a new machine
    again = run_sweep([*argv, "--resume"], tmp_path, env)
    assert again.returncode == 0, again.stderr[-4000:]
    counts = [line for line in again.stdout.splitlines() if " trials: " in line]

    import pyarrow.fs

    fs = pyarrow.fs.S3FileSystem(
        endpoint_override=s3_endpoint, scheme="http", access_key="test", secret_key="test"
    )
    journal = tmp_path / "optuna.journal"  # the bucket's, read with Optuna's own client
    with fs.open_input_stream(f"{BUCKET}/killed/{name}/optuna.journal") as f:
        journal.write_bytes(f.read())
    study = optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    states = [t.state for t in study.trials]
    assert optuna.trial.TrialState.RUNNING not in states, states
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == trials
    # A trial started after Tune's last snapshot before the kill, unfinished, is lost: FAIL,
    # saying so, and another took its place (tests/e2e/test_sweep_resume.py forces it).
    lost = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert all(t.user_attrs.get(LOST_ATTR) for t in lost), [t.user_attrs for t in lost]
    settings = [json.dumps(t.params, sort_keys=True) for t in complete]
    assert len(set(settings)) == trials, settings  # no setting sampled twice

    client = MlflowClient(tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    everything = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    children = [r for r in everything if r.info.status == "FINISHED"]
    others = [r for r in everything if r.info.status != "FINISHED"]
    assert len(children) == trials
    assert all(r.info.status == "FAILED" and r.data.tags[ERROR_TAG] == LOST_REASON for r in others)
    expected = f"{len(everything)} trials: {trials} finished, {len(others)} failed, 0 unfinished"
    assert any(expected in line for line in counts), (counts, again.stderr[-6000:])
    numbers = [int(r.data.tags["optuna.trial_number"]) for r in children]
    assert len(set(numbers)) == trials
    tune_ids = {r.data.tags["betavae.trial_id"] for r in children}
    assert len(tune_ids) == trials
    for run in children:  # each run names its own COMPLETE Optuna trial, with its setting
        trial = study.trials[int(run.data.tags["optuna.trial_number"])]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.user_attrs["tune_trial_id"] == run.data.tags["betavae.trial_id"]
        # (linked from Optuna's side when the run was created before the trial ended)
        assert trial.user_attrs.get("mlflow_run_id") in (None, run.info.run_id)
        assert int(run.data.params["latent_dim"]) == trial.params["latent_dim"]
        assert run.data.params["objective"] == trial.params["objective"]
