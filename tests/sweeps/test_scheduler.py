"""The sweep's trial scheduler: Tune's FIFO choice, without walking the finished trials."""

from __future__ import annotations

import pickle
import random

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from sweeps.driver.scheduler import FinishedPrefixFIFO

STATES = (Trial.PENDING, Trial.RUNNING, Trial.PAUSED, Trial.ERROR, Trial.TERMINATED)


class FakeTrial:
    """A trial's status, counting how often a scheduler reads it."""

    reads = 0

    def __init__(self, name: str, status: str = Trial.PENDING) -> None:
        self.name, self._status = name, status

    @property
    def status(self) -> str:
        FakeTrial.reads += 1
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value


class FakeController:
    def __init__(self) -> None:
        self.trials: list[FakeTrial] = []

    def get_trials(self) -> list[FakeTrial]:
        return self.trials


def test_it_chooses_what_tunes_fifo_chooses():
    """A random life of a sweep: trials appended, started, paused, failed, retried, ended (a
    TERMINATED trial never changes again); at every step both schedulers pick the same."""
    rng = random.Random(7)
    controller, ours, tunes = FakeController(), FinishedPrefixFIFO(), FIFOScheduler()
    chosen = set()
    for step in range(3000):
        if rng.random() < 0.3:
            controller.trials.append(FakeTrial(f"t{step}"))
        live = [t for t in controller.trials if t._status != Trial.TERMINATED]
        for trial in rng.sample(live, min(3, len(live))):
            trial.status = rng.choice(STATES)
        pick = ours.choose_trial_to_run(controller)
        assert pick is tunes.choose_trial_to_run(controller), step
        chosen.add(None if pick is None else pick._status)
    assert chosen >= {Trial.PENDING, Trial.PAUSED, None}  # every branch was exercised


def test_finished_trials_are_walked_once():
    controller, scheduler = FakeController(), FinishedPrefixFIFO()
    controller.trials = [FakeTrial(f"t{i}", Trial.TERMINATED) for i in range(10_000)]
    controller.trials.append(FakeTrial("next"))
    assert scheduler.choose_trial_to_run(controller).name == "next"
    FakeTrial.reads = 0
    for _ in range(100):  # Tune asks on every step of its loop
        assert scheduler.choose_trial_to_run(controller).name == "next"
    assert FakeTrial.reads <= 100 * 3  # Tune's FIFO: 100 × 10,001 reads
    controller.trials[-1].status = Trial.TERMINATED
    assert scheduler.choose_trial_to_run(controller) is None


def test_an_error_trial_is_not_skipped_for_good():
    """A trial in ERROR may be set PENDING again (a retry): it is found again."""
    controller, scheduler = FakeController(), FinishedPrefixFIFO()
    controller.trials = [FakeTrial("a", Trial.ERROR), FakeTrial("b", Trial.TERMINATED)]
    assert scheduler.choose_trial_to_run(controller) is None
    controller.trials[0].status = Trial.PENDING
    assert scheduler.choose_trial_to_run(controller).name == "a"


def test_a_restored_scheduler_starts_from_the_top():
    """Pickled with the Tuner; a new driver's trial list is not the old one's."""
    controller, scheduler = FakeController(), FinishedPrefixFIFO()
    controller.trials = [FakeTrial(f"t{i}", Trial.TERMINATED) for i in range(5)]
    scheduler.choose_trial_to_run(controller)
    restored = pickle.loads(pickle.dumps(scheduler))
    fresh = FakeController()
    fresh.trials = [FakeTrial("resumed")]
    assert restored.choose_trial_to_run(fresh).name == "resumed"


def finished_trial(folder, results: int = 30, every: int = 5) -> Trial:
    """A Tune trial (stub) that reported ``results`` results, a checkpoint every ``every``."""
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult

    trial = Trial("__fake", stub=True, config={"beta": 4.0}, trial_id="t0")
    for step in range(1, results + 1):
        trial.update_last_result(
            {"training_iteration": step, "train/loss": 100.0 / step, "train/kl": 0.1 * step}
        )
        if step % every == 0:
            path = folder / f"checkpoint_{step // every - 1:06d}"
            path.mkdir()
            result = _TrainingResult(checkpoint=Checkpoint(str(path)), metrics=trial.last_result)
            trial.run_metadata.checkpoint_manager.register_checkpoint(result)
    trial.set_status(Trial.TERMINATED)
    return trial


def test_a_finished_trial_is_retired_to_its_last_result_and_checkpoint(tmp_path):
    """What Tune's snapshot keeps of a finished trial shrinks (here 6.3 → 2.0 kB); its last
    result and checkpoint, what the sweep reads, survive the snapshot's JSON."""
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    trial = finished_trial(tmp_path)
    before = len(trial.run_metadata.get_json_state())
    controller = FakeController()
    controller.trials = [trial]
    assert FinishedPrefixFIFO().choose_trial_to_run(controller) is None  # passes it: retires
    after = trial.run_metadata.get_json_state()
    assert len(after) < before / 2
    restored = _TrainingRunMetadata.from_json_state(after)
    assert restored.metric_analysis == {} and restored.last_result["train/loss"] == 100.0 / 30
    manager = restored.checkpoint_manager
    assert [r.checkpoint.path for r in manager.best_checkpoint_results] == [
        str(tmp_path / "checkpoint_000005")
    ]
    assert manager.latest_checkpoint_result.checkpoint.path == str(tmp_path / "checkpoint_000005")


def test_a_trial_is_retired_as_it_completes(tmp_path):
    trial = finished_trial(tmp_path)
    FinishedPrefixFIFO().on_trial_complete(FakeController(), trial, trial.last_result)
    assert trial.run_metadata.metric_analysis == {}
    assert len(trial.run_metadata.checkpoint_manager.best_checkpoint_results) == 1
