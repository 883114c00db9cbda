"""``models:/NAME@best``: the best feasible trial's model, a new version only when the best
changes (``sweeps.tracking.registry``)."""

from __future__ import annotations

import json

import numpy as np
import safetensors.torch
from mlflow.tracking import MlflowClient

from analysis.schema import MODEL_ID_TAG
from betavae.config import TrainConfig
from betavae.models import build_model
from sweeps.tracking.registry import register_best
from sweeps.tracking.runs import experiment_id, log_trained_model


def doc(best: str | None, runs: dict[str, str]) -> dict:
    trials = [{"trial_id": t, "run_id": r} for t, r in runs.items()]
    chosen = {"median_trial_id": best, "setting": f"s-{best}", "label": best} if best else None
    return {"best_feasible": chosen, "trials": trials}


def test_the_alias_best_follows_the_best_trial_and_loads(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    exp = experiment_id(client, "sweep")
    runs = {}
    for trial, latents in (("a", 3), ("b", 5)):
        folder = tmp_path / trial
        folder.mkdir()
        weights = build_model("burgess", latents, 1).state_dict()
        safetensors.torch.save_file(weights, str(folder / "model.safetensors"))
        config = TrainConfig(latent_dim=latents).to_dict()
        (folder / "config.json").write_text(json.dumps(config))
        run = client.create_run(exp).info.run_id
        client.set_tag(run, MODEL_ID_TAG, log_trained_model(uri, run, folder, [1, 64, 64], latents))
        runs[trial] = run

    assert register_best(client, "sweep", doc(None, runs)) is None  # nothing feasible
    assert register_best(client, "sweep", doc("a", runs)) == "1"
    assert register_best(client, "sweep", doc("a", runs)) == "1"  # unchanged: no new version
    assert register_best(client, "sweep", doc("b", runs)) == "2"  # the best moved
    best = client.get_model_version_by_alias("sweep", "best")
    assert best.run_id == runs["b"] and best.tags["betavae.trial_id"] == "b"
    mlflow.set_tracking_uri(uri)
    codes = mlflow.pyfunc.load_model("models:/sweep@best").predict(
        np.zeros((2, 1, 64, 64), np.float32)
    )
    assert codes.shape == (2, 5)  # b's model (5 latents), not a's
