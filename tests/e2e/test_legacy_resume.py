"""A sweep interrupted under the flat ``sweeps/`` layout (before the subpackages) resumes to the
end with today's code: Tune's pickled state names the old module paths, and they still load.

The fixture (``tests/fixtures/legacy_sweep``, how it was made in its README) holds absolute
paths in its pickles, so it is copied to the place it was made at and resumed there.
"""

from __future__ import annotations

import json
import pickletools
import shutil
import sys
from pathlib import Path

import pytest
from sweep_support import REPO, SCRIPT, run_sweep, sweep_env

pytestmark = pytest.mark.slow
FIXTURE = REPO / "tests" / "fixtures" / "legacy_sweep"
PLACE = Path("/tmp/betavae-legacy-sweep")
NAME, TRIALS = "legacy", 3

#: What the first driver pickled, by module path: each must still resolve.
LEGACY_CLASSES = {
    ("sweeps.search", "ConstrainedOptunaSearch"),
    ("sweeps.search", "StudyLink"),
    ("sweeps.space", "SearchSpace"),
    ("sweeps.tracking", "MLflowTracking"),
    ("sweeps.mlflow_writer", "MLflowWriter"),
    ("sweeps.stall", "StallWatch"),
    ("sweeps.progress", "Progress"),
}


def pickled_globals(path: Path) -> set[tuple[str, str]]:
    """The ``(module, name)`` pairs a pickle imports, read without unpickling it: the strings
    before each ``STACK_GLOBAL``, memoized ones included."""
    found: set[tuple[str, str]] = set()
    memo: dict[int, object] = {}
    pushed: list[object] = []  # what each opcode left on top (a string or None)
    for op, arg, _ in pickletools.genops(path.read_bytes()):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            pushed.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif op.name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = pushed[-1] if pushed else None
        elif op.name in ("BINGET", "LONG_BINGET", "GET"):
            pushed.append(memo.get(arg))
        elif op.name == "STACK_GLOBAL":
            found.add((str(pushed[-2]), str(pushed[-1])))
            pushed.append(None)
        elif op.name == "GLOBAL":
            found.add(tuple(arg.split(" ", 1)))
            pushed.append(None)
        else:
            pushed.append(None)
    return found


@pytest.fixture
def legacy_sweep():
    shutil.rmtree(PLACE, ignore_errors=True)
    shutil.copytree(FIXTURE, PLACE)
    yield PLACE
    shutil.rmtree(PLACE, ignore_errors=True)


def test_the_fixture_names_the_flat_layout():
    """The fixture exercises what it claims: its pickles name the old module paths."""
    state = FIXTURE / "ray_results" / NAME
    names = pickled_globals(state / "tuner.pkl")
    assert names >= LEGACY_CLASSES, LEGACY_CLASSES - names
    # trial_name was pickled by value (the driver ran as a script, ``__main__``); its code
    # imports the old ``sweeps.trial_config`` when the restored Tuner names a new trial.
    assert b"sweeps.trial_config" in (state / "tuner.pkl").read_bytes()


def test_a_sweep_started_before_the_move_resumes_to_the_end(legacy_sweep):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    argv = [
        sys.executable, str(SCRIPT),
        "--preset", "smoke", "--name", NAME,
        "--storage-path", str(legacy_sweep / "ray_results"),
        "--tracking-uri", f"sqlite:///{legacy_sweep / 'mlflow.db'}",
        "--num-samples", str(TRIALS), "--replicates", "1", "--max-concurrent", "1",
        "--steps", "200", "--report-every", "10", "--checkpoint-every", "200",
        "--resume",
    ]  # fmt: skip
    done = run_sweep(argv, legacy_sweep, sweep_env())
    assert done.returncode == 0, done.stderr[-4000:]

    sweep = legacy_sweep / "ray_results" / NAME
    study = optuna.load_study(
        study_name=NAME,
        storage=JournalStorage(JournalFileBackend(str(sweep / "optuna.journal"))),
    )
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * TRIALS
    client = MlflowClient(f"sqlite:///{legacy_sweep / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(NAME).experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == TRIALS + 1 and len(children) == TRIALS
    assert all(r.info.status == "FINISHED" for r in runs), [r.info.status for r in runs]
    for run in children:  # each run names its own Optuna trial, with the same setting
        trial = study.trials[int(run.data.tags["optuna.trial_number"])]
        assert float(run.data.params["latent_dim"]) == trial.params["latent_dim"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert steps == list(range(10, 201, 10)), steps
    report = json.loads((sweep / "report" / "frontier.json").read_text())
    assert report["counts"]["trials"] == TRIALS and report["counts"]["finished"] == TRIALS
