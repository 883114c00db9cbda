"""What a finished trial keeps (``sweeps.store.finished``): nothing goes from a final
checkpoint cut short, the weights stay where MLflow's copy would not outlive the head, and a
trial trained again over a pruned folder keeps its new weights."""

from __future__ import annotations

import json

from ray import tune

from sweeps.store.finished import keep_only_final, weights_may_leave

MODEL = {"model_id": "m-1", "weights_uri": "s3://b/m-1/artifacts/model.safetensors"}


def trial_folder(root, *, final_weights=True):
    for index in range(3):
        model = root / f"checkpoint_{index:06d}" / "model"
        model.mkdir(parents=True)
        (model / "config.json").write_text("{}")
        (model / "trainer_state.pt").write_bytes(b"adam")
        if index < 2 or final_weights:
            (model / "model.safetensors").write_bytes(b"weights")
    (root / "checkpoint_000002" / "result.json").write_text(json.dumps({"final": 1.0}))
    return tune.Checkpoint(str(root / "checkpoint_000002"))


def test_a_final_checkpoint_cut_short_prunes_nothing(tmp_path):
    """A worker lost while saving its final checkpoint left no weights there: the older
    checkpoints are what the trial can resume from."""
    final = trial_folder(tmp_path, final_weights=False)
    assert keep_only_final(final, MODEL) == 0
    assert len(list(tmp_path.glob("checkpoint_*/model/trainer_state.pt"))) == 3


def test_weights_leave_only_for_a_store_that_outlives_the_head():
    assert weights_may_leave(True, "file:///home/me/mlartifacts/1/models/m-1/artifacts")
    assert not weights_may_leave(False, "file:///home/ray/mlartifacts/1/models/m-1/artifacts")
    assert not weights_may_leave(False, "/home/ray/mlartifacts/1/models/m-1/artifacts")
    assert weights_may_leave(False, "s3://bucket/mlflow-artifacts/1/models/m-1/artifacts")
    assert weights_may_leave(False, "mlflow-artifacts:/1/models/m-1/artifacts")


def test_without_a_model_to_refer_to_the_weights_stay(tmp_path):
    final = trial_folder(tmp_path)
    assert keep_only_final(final, None) == 2
    model = tmp_path / "checkpoint_000002" / "model"
    assert sorted(p.name for p in model.iterdir()) == ["config.json", "model.safetensors"]


def test_a_trial_trained_again_over_a_pruned_folder_keeps_its_new_weights(tmp_path):
    final = trial_folder(tmp_path)
    keep_only_final(final, MODEL)
    model = tmp_path / "checkpoint_000002" / "model"
    first = json.loads((model / "weights.json").read_text())
    assert first["model_id"] == "m-1" and not (model / "model.safetensors").exists()
    (model / "model.safetensors").write_bytes(b"new weights")  # the rerun's final checkpoint
    keep_only_final(final, MODEL)  # MLflow still names the old model
    assert (model / "model.safetensors").read_bytes() == b"new weights"
    assert json.loads((model / "weights.json").read_text()) == first
