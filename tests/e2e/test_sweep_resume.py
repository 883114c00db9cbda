"""``kill -9`` of the sweep driver at several moments, then the same command with ``--resume``:
every trial completes once, in Optuna and in MLflow, with unbroken curves, and the report is
written.

The moments are seen from outside the driver, in the sweep folder: a trial folder appears
(trials starting), a trial's second checkpoint (mid-training), a trial's checkpoint of its
last training step without its final one (final evaluation), the report folder (report).
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
N = 3


def argv(tmp: Path) -> list[str]:
    return smoke_argv(
        tmp,
        "crash",
        "--steps",
        str(STEPS),
        "--report-every",
        str(REPORT),
        "--checkpoint-every",
        str(CHECKPOINT),
        "--num-samples",
        str(N),
    )


STEPS, REPORT, CHECKPOINT = 120, 20, 40
LAST_TRAINING_CHECKPOINT = STEPS // CHECKPOINT - 1  # index of the step-200 checkpoint


def _trial_started(sweep: Path) -> bool:
    return bool(list(sweep.glob("*/params.json")))


def _mid_training(sweep: Path) -> bool:
    return bool(list(sweep.glob("*/checkpoint_000001")))


def _snapshot_names_a_checkpoint(sweep: Path) -> bool:
    """A trial's checkpoint reaches the disk before the driver registers it and the next
    snapshot names it; under load that gap is seconds, so wait for the snapshot itself."""
    from sweeps.driver.snapshot import SNAPSHOT_GLOB, named_checkpoints

    snapshots = sorted(sweep.glob(SNAPSHOT_GLOB))
    try:
        return bool(snapshots) and any(
            named_checkpoints(json.loads(snapshots[-1].read_text())).values()
        )
    except (OSError, ValueError):  # replaced or half-written as it was read
        return False


def _final_evaluation(sweep: Path) -> bool:
    for trial in sweep.glob("*/"):
        if (trial / f"checkpoint_{LAST_TRAINING_CHECKPOINT:06d}").is_dir() and not (
            trial / f"checkpoint_{LAST_TRAINING_CHECKPOINT + 1:06d}"
        ).exists():
            return True
    return False


def _report(sweep: Path) -> bool:
    return (sweep / "report").exists()


MOMENTS = {
    "trials-starting": _trial_started,
    "mid-training": _mid_training,
    # Mid-training, then each checkpoint Tune's snapshot names is deleted: what a kill between
    # Tune deleting a trial's oldest kept checkpoint and its next snapshot leaves.
    "named-checkpoint-deleted": _snapshot_names_a_checkpoint,
    "final-evaluation": _final_evaluation,
    "report": _report,
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_killed_driver_resumes_without_duplicates_or_gaps(tmp_path, moment):
    env = sweep_env()
    if moment == "named-checkpoint-deleted":  # a snapshot a second: one that names checkpoints
        env["TUNE_GLOBAL_CHECKPOINT_S"] = "1"
    first = subprocess.Popen(
        argv(tmp_path),
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = storage(tmp_path) / "crash"
    seen = MOMENTS[moment]
    deadline = time.time() + 300
    while time.time() < deadline and not seen(checkpoints) and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, f"the sweep ended before the moment {moment!r} was seen"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    if moment == "named-checkpoint-deleted":
        assert delete_named_checkpoints(checkpoints), "the snapshot named no checkpoint"
    second = run_sweep([*argv(tmp_path), "--resume"], tmp_path, env)
    assert second.returncode == 0, second.stderr[-4000:]
    # The sweep's Tuner carries its scheduler, which the resumed driver unpickled.
    assert b"FinishedPrefixFIFO" in (checkpoints / "tuner.pkl").read_bytes()

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == N + 1 and len(children) == N
    statuses = {r.info.run_name: (r.info.status, r.data.tags.get("error")) for r in runs}
    assert all(r.info.status == "FINISHED" for r in runs), statuses
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        # Each step once; a point the killed driver had not sent is back-filled at the end.
        assert sorted(steps) == list(range(REPORT, STEPS + 1, REPORT)), steps
        assert "metric.mig" in run.data.metrics
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

    report = json.loads((checkpoints / "report" / "frontier.json").read_text())
    assert report["counts"]["trials"] == N and report["counts"]["finished"] == N


def delete_named_checkpoints(sweep: Path) -> list[Path]:
    """Delete every checkpoint the newest Tune snapshot names for an unfinished trial."""
    import shutil

    from sweeps.driver.snapshot import SNAPSHOT_GLOB, named_checkpoints

    snapshots = sorted(sweep.glob(SNAPSHOT_GLOB))
    if not snapshots:
        return []
    named = named_checkpoints(json.loads(snapshots[-1].read_text()))
    deleted = [sweep / trial / name for trial, names in named.items() for name in names]
    for path in deleted:
        shutil.rmtree(path, ignore_errors=True)
    return deleted


def _snapshot_trials(sweep: Path) -> int | None:
    """How many trials the newest Tune snapshot holds; None when unreadable (being written)."""
    from sweeps.driver.snapshot import SNAPSHOT_GLOB

    snapshots = sorted(sweep.glob(SNAPSHOT_GLOB))
    try:
        return len(json.loads(snapshots[-1].read_text())["trial_data"]) if snapshots else None
    except (OSError, ValueError):
        return None


def _copy_session_files(sweep: Path, to: Path) -> bool:
    """Copy Tune's snapshot and the files its session writes beside it; False if one was
    replaced while copied."""
    import shutil

    from sweeps.driver.snapshot import SESSION_FILES

    to.mkdir(exist_ok=True)
    try:
        for pattern in SESSION_FILES:
            for f in sweep.glob(pattern.format("*")):
                shutil.copy2(f, to / f.name)
    except FileNotFoundError:
        return False
    return True


def _trial_folders(sweep: Path) -> list[Path]:
    return [d for d in sweep.glob("*-*") if d.is_dir()]


def _third_started(sweep: Path) -> bool:
    return len(_trial_folders(sweep)) >= 3


def _third_finished(sweep: Path) -> bool:
    return (
        len(
            [
                d
                for d in _trial_folders(sweep)
                if (d / "checkpoint_000002" / "result.json").is_file()
            ]
        )
        >= 3
    )


def _count_the_trials_started_since(sweep: Path) -> None:
    """Tune writes its snapshot, then its search generator's state: a driver killed between the
    two leaves a generator that has counted, and holds a concurrency slot for, the trials
    started since the snapshot. The restored state is made so: those trials counted and held."""
    import ray.cloudpickle as cloudpickle

    from analysis.trial_files import folder_trial_id
    from sweeps.driver.snapshot import SEARCH_GEN_STATE, SNAPSHOT_GLOB, snapshot_trial_ids

    held = snapshot_trial_ids(json.loads(sorted(sweep.glob(SNAPSHOT_GLOB))[-1].read_text()))
    since = {folder_trial_id(d.name) for d in _trial_folders(sweep)} - held
    assert since, "no trial was started after the snapshot"
    (path,) = sweep.glob(SEARCH_GEN_STATE.format("*"))
    state = cloudpickle.loads(path.read_bytes())
    state["counter"] = len(held) + len(since)
    limiter = state["name:ConcurrencyLimiter"]
    limiter["live_trials"] |= since
    limiter["num_unfinished_live_trials"] = len(limiter["live_trials"])
    path.write_bytes(cloudpickle.dumps(state))


@pytest.mark.parametrize("moment", ["third-started", "third-finished"])
def test_trials_started_after_the_last_snapshot_are_replaced_or_counted(tmp_path, moment):
    """Tune snapshots its trials every 10 s or more, so a driver killed with ``kill -9`` may
    have started (and even finished) trials its last snapshot does not hold, and the resumed
    Tune never knows them. Forced here: the snapshot of the first two trials is put back after
    the kill. Their Optuna trials and MLflow runs do not stay RUNNING for ever: a finished one
    counts towards ``--num-samples``, a lost one ends FAILED in both stores saying why and
    another trial takes its place. The sweep ends with ``--num-samples`` finished trials.
    Killed as a third trial starts (it is lost), with Tune's search generator written after the
    snapshot (it has counted the third trial: the resume must not stop a trial short nor keep
    a concurrency slot for it), or once the third trial has finished (it counts)."""
    import shutil

    from analysis.schema import ERROR_TAG, LOST_ATTR, TRIAL_ID_TAG, TUNE_TRIAL_ATTR
    from sweeps.driver.snapshot import SNAPSHOT_GLOB, snapshot_trial_ids
    from sweeps.search.study import LOST_REASON

    n, name = 4, "stale"
    argv = smoke_argv(tmp_path, name, "--num-samples", str(n), "--replicates", "1")
    env = sweep_env()
    first = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sweep, saved = storage(tmp_path) / name, tmp_path / "snapshot-of-two"
    deadline, kept = time.time() + 300, False
    seen = _third_started if moment == "third-started" else _third_finished
    while not seen(sweep):  # the smoke preset runs two trials at a time
        assert first.poll() is None and time.time() < deadline, f"{moment} was not seen"
        if len(_trial_folders(sweep)) == 2 and _snapshot_trials(sweep) == 2:
            kept = _copy_session_files(sweep, saved) or kept
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert kept, "no snapshot of the first two trials was seen"
    for f in saved.iterdir():  # the snapshot the killed driver had last written
        shutil.copy2(f, sweep / f.name)
    if moment == "third-started":  # killed between writing the snapshot and the generator's
        _count_the_trials_started_since(sweep)  # state (as Tune writes them): both counted

    again = run_sweep([*argv, "--resume"], tmp_path, env)
    assert again.returncode == 0, again.stderr[-4000:]

    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = JournalFileBackend(str(sweep / "optuna.journal"))
    study = optuna.load_study(study_name=name, storage=JournalStorage(journal))
    by_state: dict = {}
    for t in study.trials:
        by_state.setdefault(t.state, []).append(t)
    assert set(by_state) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL}
    assert len(by_state[optuna.trial.TrialState.COMPLETE]) == n
    lost = by_state.get(optuna.trial.TrialState.FAIL, [])
    assert all(t.user_attrs[LOST_ATTR] and t.user_attrs["error"] == LOST_REASON for t in lost)
    tune_trials = snapshot_trial_ids(json.loads(sorted(sweep.glob(SNAPSHOT_GLOB))[-1].read_text()))
    orphans = {t.user_attrs[TUNE_TRIAL_ATTR] for t in study.trials} - tune_trials
    assert orphans  # the scenario happened: trials the resumed Tune never held
    assert {t.user_attrs[TUNE_TRIAL_ATTR] for t in lost} <= orphans
    complete = {t.user_attrs[TUNE_TRIAL_ATTR] for t in by_state[optuna.trial.TrialState.COMPLETE]}
    if moment == "third-started":
        assert lost, "the third trial, killed as it started, was not failed as lost"
    else:
        assert orphans & complete, "no trial finished after the snapshot was counted"

    client = MlflowClient(tracking_uri(tmp_path))
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    finished = [r for r in children if r.info.status == "FINISHED"]
    failed = [r for r in children if r.info.status != "FINISHED"]
    seen = (
        [(r.data.tags.get(TRIAL_ID_TAG), r.info.status, r.data.tags.get(ERROR_TAG)) for r in runs],
        [(t.user_attrs.get(TUNE_TRIAL_ATTR), t.state.name) for t in study.trials],
    )
    assert len(finished) == n, seen
    assert {r.data.tags[TRIAL_ID_TAG] for r in finished} == complete
    for run in failed:  # a lost trial's run, if the killed driver had created it
        assert run.info.status == "FAILED" and run.data.tags[ERROR_TAG] == LOST_REASON
    assert {r.data.tags[TRIAL_ID_TAG] for r in failed} <= {
        t.user_attrs[TUNE_TRIAL_ATTR] for t in lost
    }
    summary = f"{len(children)} trials: {n} finished, {len(failed)} failed, 0 unfinished"
    assert summary in again.stdout, [ln for ln in again.stdout.splitlines() if "trials:" in ln]
