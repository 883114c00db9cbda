"""Trials that ended in ERROR are retried by ``--resume``: here every trial's worker is killed
by the hung-trial watch after each report (``--stall-timeout`` far below the report interval)
until Tune gives up on it (ERROR after its retries); the sweep ends with no trial finished
(exit 1); their Optuna trials stay open with the reason. ``--resume`` with a sane timeout
restores each ERROR trial from its last checkpoint and finishes it: the runs end FINISHED
without their error tag, the Optuna trials COMPLETE."""

from __future__ import annotations

import pytest
from sweep_support import run_sweep, smoke_argv, storage, tracking_uri

pytestmark = pytest.mark.slow
N, STEPS = 2, 600


def argv(tmp, *flags):
    # One checkpoint, at the end: a killed worker restarts its trial from step 0. Long enough
    # that no worker finishes before the kill lands (the kill's own Ray worker takes seconds
    # to start on a loaded machine).
    steps = ("--steps", str(STEPS), "--checkpoint-every", str(STEPS))
    # One retry (not the default two) before Tune gives up: the same path, one kill fewer.
    return smoke_argv(
        tmp, "errored", "--num-samples", str(N), "--max-failures", "1", *steps, *flags
    )


def test_resume_retries_trials_that_ended_in_error(tmp_path):
    first = run_sweep(argv(tmp_path, "--stall-timeout", "0.01"), tmp_path)
    assert first.returncode == 1, first.stderr[-4000:]
    assert "no trial finished" in first.stderr and "killing its worker" in first.stderr
    # --max-failures 1: each trial's worker killed twice (its run and its one retry).
    assert first.stderr.count("killing its worker") == 2 * N, first.stderr[-4000:]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(tmp_path))
    experiment = client.get_experiment_by_name("errored").experiment_id

    def children():
        runs = client.search_runs([experiment])
        return [r for r in runs if "mlflow.parentRunId" in r.data.tags]

    assert [r.info.status for r in children()] == ["FAILED"] * N
    study = load_study(tmp_path)  # open for the retry, with the reason
    assert [t.state.name for t in study.trials] == ["RUNNING"] * N
    assert all("--resume retries it" in t.user_attrs["error"] for t in study.trials)

    second = run_sweep(argv(tmp_path, "--resume"), tmp_path)
    assert second.returncode == 0, second.stderr[-4000:]
    assert f"{N} trials: {N} finished, 0 failed" in second.stdout
    runs = children()
    assert len(runs) == N and {r.info.status for r in runs} == {"FINISHED"}
    assert not any("error" in r.data.tags for r in runs)
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert steps == list(range(10, STEPS + 1, 10)), steps

    assert [t.state.name for t in load_study(tmp_path).trials] == ["COMPLETE"] * N


def load_study(tmp):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalFileBackend(str(storage(tmp) / "errored" / "optuna.journal"))
    return optuna.load_study(study_name="errored", storage=JournalStorage(journal))
