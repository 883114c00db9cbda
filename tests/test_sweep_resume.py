"""``kill -9`` of the sweep driver mid-training, then the same command with ``--resume``:
every trial completes once, in Optuna and in MLflow, with unbroken curves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
N = 4


def argv(tmp: Path) -> list[str]:
    return [
        sys.executable,
        str(REPO / "sweeps" / "beta_frontier.py"),
        "--preset",
        "smoke",
        "--name",
        "crash",
        "--steps",
        "200",
        "--report-every",
        "20",
        "--checkpoint-every",
        "40",
        "--num-samples",
        str(N),
        "--storage-path",
        str(tmp / "rr"),
        "--tracking-uri",
        f"sqlite:///{tmp / 'm.db'}",
    ]


def test_killed_driver_resumes_without_duplicates_or_gaps(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    first = subprocess.Popen(
        argv(tmp_path),
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = tmp_path / "rr" / "crash"
    deadline = time.time() + 180
    while time.time() < deadline and not list(checkpoints.glob("*/checkpoint_000001")):
        time.sleep(0.5)  # wait until some trial has checkpointed at least twice
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    second = subprocess.run(
        [*argv(tmp_path), "--resume"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert second.returncode == 0, second.stderr[-4000:]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == N + 1 and len(children) == N
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert steps == list(range(20, 201, 20)), steps
        if run.data.params["objective"] == "capacity":
            c_max = float(run.data.params["capacity_max"])
            anneal = int(run.data.params["capacity_anneal_steps"])
            for m in client.get_metric_history(run.info.run_id, "train/capacity"):
                assert m.value == pytest.approx(c_max * min(1.0, m.step / anneal))

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalFileBackend(str(checkpoints / "optuna.journal"))
    study = optuna.load_study(study_name="crash", storage=JournalStorage(journal))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * N
