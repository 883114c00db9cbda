"""A trial restored by Tune continues from the newest of its kept checkpoints that loads: a
damaged newest one is skipped with a warning naming the file
(``sweeps.trial.trainable._restore``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray import tune

from betavae.config import TrainConfig
from betavae.data import load_dataset
from betavae.training import Trainer
from sweeps.trial import trainable

CONFIG = TrainConfig(steps=30, batch_size=16, latent_dim=3, device="cpu", dataset="dsprites")


@pytest.fixture
def trial_folder(tmp_path) -> Path:
    """A trial folder with checkpoints at steps 10, 20 and 30 (``checkpoint_000000``…2)."""
    trainer = Trainer(CONFIG, load_dataset(CONFIG.dataset))
    history = []
    for index in range(3):
        trainer.fit((index + 1) * 10, log_every=10)
        history.append({"step": trainer.step, "train/loss": 1.0})
        trainable._write_state(trainer, history, tmp_path / f"checkpoint_{index:06d}")
    return tmp_path


def restore(monkeypatch, folder: Path, newest: str = "checkpoint_000002"):
    checkpoint = tune.Checkpoint.from_directory(str(folder / newest))
    monkeypatch.setattr(trainable.tune, "get_checkpoint", lambda: checkpoint)
    return trainable._restore(CONFIG)


def test_an_intact_newest_checkpoint_is_used(monkeypatch, trial_folder):
    trainer, history = restore(monkeypatch, trial_folder)
    assert trainer.step == 30 and [r["step"] for r in history] == [10, 20, 30]


@pytest.mark.parametrize("name", ["model/model.safetensors", "model/trainer_state.pt"])
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(
    monkeypatch, trial_folder, name, damage
):
    path = trial_folder / "checkpoint_000002" / name
    kept = path.stat().st_size // 2 if damage == "truncated" else 0
    path.write_bytes(path.read_bytes()[:kept])
    with pytest.warns(UserWarning, match=rf"{path}: unreadable"):
        trainer, history = restore(monkeypatch, trial_folder)
    assert trainer.step == 20 and [r["step"] for r in history] == [10, 20]


def test_a_torn_history_line_is_skipped(monkeypatch, trial_folder, caplog):
    path = trial_folder / "checkpoint_000002" / "history.jsonl"
    path.write_text(path.read_text()[:-8])  # the last line cut mid-write
    trainer, history = restore(monkeypatch, trial_folder)
    assert trainer.step == 30 and [r["step"] for r in history] == [10, 20]
    assert f"{path}: line 3 is not a JSON row" in caplog.text


def test_with_every_checkpoint_damaged_the_trial_starts_over(monkeypatch, trial_folder):
    for weights in trial_folder.glob("checkpoint_*/model/model.safetensors"):
        weights.write_bytes(b"")
    with pytest.warns(UserWarning) as caught:
        trainer, history = restore(monkeypatch, trial_folder)
    assert trainer.step == 0 and history == []
    messages = [str(w.message) for w in caught]
    assert len(messages) == 4 and "from step 0" in messages[-1], messages


def test_a_snapshot_naming_an_older_or_a_recreated_checkpoint_resumes_from_the_newest_step(
    monkeypatch, trial_folder
):
    """After a killed driver, Tune's snapshot may name a checkpoint older than the trial
    reached, or one deleted since (``sweeps.driver.snapshot`` recreates it empty)."""
    trainer, history = restore(monkeypatch, trial_folder, newest="checkpoint_000000")
    assert trainer.step == 30 and [r["step"] for r in history] == [10, 20, 30]
    # A run resumed from checkpoint_000000 before wrote checkpoint_000001 again, at step 40.
    (trial_folder / "checkpoint_000003").mkdir()  # named by the snapshot, deleted, recreated
    trainer.fit(40, log_every=10)
    history.append({"step": 40, "train/loss": 1.0})
    trainable._write_state(trainer, history, trial_folder / "checkpoint_000001")
    trainer, history = restore(monkeypatch, trial_folder, newest="checkpoint_000003")
    assert trainer.step == 40 and [r["step"] for r in history] == [10, 20, 30, 40]


def test_a_finished_trial_restored_from_an_old_snapshot_reports_its_final_result_again(
    monkeypatch, trial_folder
):
    """Its whole final checkpoint is found (from the snapshot's older checkpoint, or from the
    trial's folder when the snapshot named none) and reported again through a local copy; a
    final checkpoint cut short (no weights, a torn result.json) is not taken for one."""
    import json

    final = trial_folder / "checkpoint_000002"
    (final / "result.json").write_text(
        json.dumps({"step": 30, "final": 1.0, "metric.mig": 0.2, "kl_per_dim": [1.0]})
    )
    reported = []

    def report(result, checkpoint=None):
        copied = Path(checkpoint.path)
        assert copied != final  # a copy: Tune may copy it onto the folder it came from
        reported.append((result, sorted(p.name for p in copied.iterdir())))

    monkeypatch.setattr(trainable.tune, "report", report)
    older = tune.Checkpoint.from_directory(str(trial_folder / "checkpoint_000000"))
    assert trainable._report_finished_again(older)
    expected = ({"step": 30, "final": 1.0, "metric.mig": 0.2},
                ["history.jsonl", "model", "result.json"])  # fmt: skip
    assert reported == [expected]
    in_folder = trainable._checkpoints_in(older.filesystem, str(trial_folder))
    monkeypatch.setattr(trainable, "_stored_checkpoints", lambda: in_folder)
    assert trainable._report_finished_again(None) and reported[-1] == expected

    (final / "model" / "model.safetensors").unlink()  # cut short: no weights
    assert not trainable._report_finished_again(older)
    (final / "model" / "weights.json").write_text("{}")  # finished, weights in MLflow
    assert trainable._report_finished_again(older)
    (final / "result.json").write_text('{"step": 30, "fin')  # torn
    assert not trainable._report_finished_again(older)
