"""A trial whose loss turns NaN stops at once, FAILED in MLflow with its reason, FAIL in Optuna,
and the sweep goes on to the next trial and lists both in its report.

A learning rate of 1 makes every trial diverge within its first ten steps (measured: NaN at
step 10 for both objective families).
"""

from __future__ import annotations

import json

import pytest
from sweep_support import run_sweep, smoke_argv, storage, tracking_uri

pytestmark = pytest.mark.slow


def test_diverged_trials_fail_fast_and_the_sweep_goes_on(tmp_path):
    argv = smoke_argv(
        tmp_path,
        "div",
        "--num-samples",
        "2",
        "--replicates",
        "1",
        "--max-concurrent",
        "1",  # one after the other: the second starts after the first failed
        "--learning-rate",
        "1",
    )
    done = run_sweep(argv, tmp_path)
    assert done.returncode == 1, done.stderr[-4000:]  # no trial finished: a failed sweep
    assert "no trial finished: see the failed trials above" in done.stderr
    assert "2 trials: 0 finished, 2 failed, 0 unfinished" in done.stdout
    assert "No trial finished with scores: the frontier is empty." in done.stdout

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("div").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    for run in children:
        assert run.info.status == "FAILED"
        assert run.data.tags["error"].startswith("diverged: loss is not finite at step 10")
        # Stopped at once: nothing logged after the first report point.
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert steps == []  # the diverged window itself is not a curve point
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "FINISHED"

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalFileBackend(str(storage(tmp_path) / "div" / "optuna.journal"))
    study = optuna.load_study(study_name="div", storage=JournalStorage(journal))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2

    report = storage(tmp_path) / "div" / "report"
    doc = json.loads((report / "frontier.json").read_text())
    assert doc["counts"]["failed"] == 2 and doc["frontier"] == []
    assert all(f["error"].startswith("diverged") for f in doc["failed"])
    assert (report / "report.md").read_text().count("diverged: loss is not finite") == 2
