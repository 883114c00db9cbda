"""One sweep taken through what a cluster does to a driver, on local Ray:

1. a second driver on the running sweep is refused (exit 2), naming the first;
2. SIGTERM (``ray job stop``, Kubernetes) stops the sweep: exit 143, the parent run KILLED,
   the unfinished trials KILLED (not failed), no report;
3. the newest checkpoint of an unfinished trial is truncated;
4. ``--resume auto`` continues from the checkpoint before it, with a warning naming the file;
   SIGINT (Ctrl+C) stops it the same way: exit 130;
5. ``--resume auto --stall-timeout 8`` finishes the sweep, though one trial's worker is
   stopped with SIGSTOP (killed after 8 s, the trial retried from its checkpoint): every
   trial once in MLflow and Optuna, FINISHED, with unbroken curves, and the report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sweep_support import run_sweep, smoke_argv, storage, sweep_env, tracking_uri

pytestmark = pytest.mark.slow
N, STEPS, REPORT, CHECKPOINT = 3, 280, 20, 40
NAME = "signals"


def argv(tmp: Path) -> list[str]:
    return smoke_argv(
        tmp, NAME, "--num-samples", str(N), "--steps", str(STEPS), "--report-every",
        str(REPORT), "--checkpoint-every", str(CHECKPOINT), "--resume", "auto",
    )  # fmt: skip


def start(tmp: Path, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*argv(tmp), *flags], cwd=tmp, env=sweep_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def results_logged(sweep: Path) -> int:
    return sum(len(f.read_text().splitlines()) for f in sweep.glob("*/result.json"))


def newest_worker(sweep: Path) -> int:
    """The pid of the worker that reported last (Tune logs it with every result)."""
    rows = [
        json.loads(line)
        for f in sweep.glob("*/result.json")
        for line in f.read_text().splitlines()
        if line.strip()
    ]
    return max(rows, key=lambda row: row["timestamp"])["pid"]


def checkpoints(sweep: Path) -> int:
    return len(list(sweep.glob("*/checkpoint_*")))


def wait_for(condition, driver: subprocess.Popen, what: str) -> None:
    deadline = time.time() + 300
    while not condition():
        assert driver.poll() is None, f"the driver ended before {what}"
        assert time.time() < deadline, f"no {what} within 300 s"
        time.sleep(0.1)


def mlflow_runs(tmp: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(tmp))
    return client, client.search_runs([client.get_experiment_by_name(NAME).experiment_id])


def stop(driver: subprocess.Popen, sig: signal.Signals, tmp: Path, *, mid_training: bool) -> str:
    """Send ``sig`` to the driver alone; check what a stopped sweep must look like."""
    driver.send_signal(sig)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 128 + sig, err[-3000:]
    assert f"stopped by {sig.name}" in err and "--resume" in err
    _, runs = mlflow_runs(tmp)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.info.status == "KILLED" and parent.data.tags["interrupted"] == sig.name
    children = [r for r in runs if r is not parent]
    assert {r.info.status for r in children} <= {"FINISHED", "KILLED"}
    if mid_training:
        assert "KILLED" in {r.info.status for r in children}
    assert not any("error" in r.data.tags for r in children)
    sweep = storage(tmp) / NAME
    assert not (sweep / "summary.json").exists() and not (sweep / "report").exists()
    assert (sweep / "optuna.journal").is_file()
    return out + err


def test_signals_a_second_driver_and_a_truncated_checkpoint_lose_nothing(tmp_path):
    sweep = storage(tmp_path) / NAME
    first = start(tmp_path)
    wait_for(lambda: checkpoints(sweep) >= 4, first, "four checkpoints")
    second = run_sweep(argv(tmp_path), tmp_path)
    assert second.returncode == 2, second.stderr[-3000:]
    assert "is being run by another driver (host " in second.stderr
    assert f"pid {first.pid}, since " in second.stderr.strip().splitlines()[-1]
    stop(first, signal.SIGTERM, tmp_path, mid_training=True)

    # Truncate the newest checkpoint of an unfinished trial: the one it resumes from. Not the
    # one Tune's snapshot names: a worker may have written a newer one the stopping driver
    # never recorded, and the trial resumes from that (sweeps.trial.trainable._restore).
    from ray.tune import ExperimentAnalysis

    folders = {
        Path(trial.checkpoint.path).parent
        for trial in ExperimentAnalysis(str(sweep)).trials
        if trial.checkpoint
    }
    restored_from = [
        max(complete, key=lambda path: path.name)
        for folder in folders
        if not any(folder.glob("checkpoint_*/result.json"))  # a finished trial's final one
        and (complete := [c.parent.parent for c in folder.glob("checkpoint_*/model/*.safetensors")])
    ]
    damaged = max(restored_from, key=lambda path: path.name)
    assert damaged.name != "checkpoint_000000", "nothing to fall back to"
    weights = damaged / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    seen = checkpoints(sweep)
    again = start(tmp_path)
    wait_for(lambda: checkpoints(sweep) >= seen + 2, again, "progress after the resume")
    err = stop(again, signal.SIGINT, tmp_path, mid_training=False)
    assert f"{weights}: unreadable weights" in err

    # The last driver watches for hung trials; one trial's worker is stopped with SIGSTOP.
    reports = results_logged(sweep)
    last = start(tmp_path, "--stall-timeout", "8")
    wait_for(lambda: results_logged(sweep) > reports, last, "a report after the resume")
    hung = newest_worker(sweep)
    os.kill(hung, signal.SIGSTOP)
    _, err = last.communicate(timeout=600)
    assert last.returncode == 0, err[-4000:]
    assert "reported nothing for" in err and f"killing its worker (pid {hung})" in err, err[-3000:]

    client, runs = mlflow_runs(tmp_path)
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == N + 1 and len(children) == N
    statuses = {r.info.run_name: (r.info.status, r.data.tags.get("error")) for r in runs}
    assert all(r.info.status == "FINISHED" for r in runs), statuses
    assert not any("interrupted" in r.data.tags for r in runs)
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        # Each step once; a point lost with the killed worker is back-filled at the trial's end.
        assert sorted(steps) == list(range(REPORT, STEPS + 1, REPORT)), steps
        assert "metric.mig" in run.data.metrics

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalStorage(JournalFileBackend(str(sweep / "optuna.journal")))
    study = optuna.load_study(study_name=NAME, storage=journal)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * N
    report = json.loads((sweep / "report" / "frontier.json").read_text())
    assert report["counts"]["trials"] == N and report["counts"]["finished"] == N
