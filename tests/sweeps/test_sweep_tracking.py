"""The MLflow callback on its own: idempotent runs, curves once per step, failures recorded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from tracking_support import CONFIG, FakeTrial, children

from sweeps.tracking.callback import MLflowTracking
from sweeps.tracking.runs import experiment_id, last_line, parent_run, trial_params


def test_parent_run_is_found_again_not_duplicated(store):
    client, exp, parent, _ = store
    again = parent_run(client, exp, "/sweeps/unit", run_name="unit", tags={}, params={"a": 1})
    assert again == parent
    other = parent_run(client, exp, "/sweeps/other", run_name="o", tags={}, params={})
    assert other != parent


def test_a_new_callback_finds_the_trials_run_instead_of_creating_one(store):
    client, exp, parent, uri = store
    trial = FakeTrial("abc")
    first = MLflowTracking(uri, exp, parent, background=False)
    first.on_trial_start(0, [], trial)
    first.on_trial_result(0, [], trial, {"step": 10, "train/loss": 5.0, "pid": 7})
    first.on_trial_result(0, [], trial, {"step": 20, "train/loss": 4.0})
    # A resumed driver whose saved state missed this trial: the tag lookup finds the run,
    # and steps already in MLflow are not logged twice.
    second = MLflowTracking(uri, exp, parent, background=False)
    second.on_trial_start(0, [], trial)
    second.on_trial_result(0, [], trial, {"step": 20, "train/loss": 4.0})
    second.on_trial_result(0, [], trial, {"step": 30, "train/loss": 3.0})
    (run,) = children(client, exp)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(10, 5.0), (20, 4.0), (30, 3.0)]
    assert "pid" not in run.data.metrics


def test_a_results_kl_list_becomes_one_mlflow_curve_per_latent(store):
    """Trials report the per-latent KL as one list (one entry in Tune's snapshot, not one per
    latent); MLflow still gets ``train/kl_per_dim/NN`` curves."""
    from analysis.trial_files import compact_curve, expand_curve

    row = {"step": 10, "train/loss": 5.0, "train/kl_per_dim/00": 0.5, "train/kl_per_dim/01": 2.0}
    compact = compact_curve(row)
    assert compact == {"step": 10, "train/loss": 5.0, "train/kl_per_dim": [0.5, 2.0]}
    assert expand_curve(compact) == row
    wide = {f"train/kl_per_dim/{i:02d}": float(i) for i in range(128)}  # 128 latents
    assert compact_curve(wide)["train/kl_per_dim"] == [float(i) for i in range(128)]
    client, exp, parent, uri = store
    cb = MLflowTracking(uri, exp, parent, background=False)
    trial = FakeTrial("kl")
    cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], trial, compact)
    (run,) = children(client, exp)
    assert run.data.metrics == {"train/loss": 5.0, "train/kl_per_dim/00": 0.5,
                                "train/kl_per_dim/01": 2.0}  # fmt: skip


def test_state_round_trip_keeps_the_map_and_the_last_step(store):
    _, exp, parent, uri = store
    cb = MLflowTracking(uri, exp, parent, background=False)
    cb.on_trial_start(0, [], FakeTrial("t1"))
    cb.on_trial_result(0, [], FakeTrial("t1"), {"step": 10, "train/loss": 1.0})
    restored = MLflowTracking(uri, exp, parent, background=False)
    restored.set_state(cb.get_state())
    assert restored.writer.runs == cb.writer.runs and restored.writer.last_step == {"t1": 10}


def test_final_result_and_completion(store):
    client, exp, parent, uri = store
    cb = MLflowTracking(uri, exp, parent, background=False)
    trial = FakeTrial("fin")
    cb.on_trial_start(0, [], trial)
    final = {
        "step": 40,
        "final": 1.0,
        "recon_nll": 80.0,
        "kl": 9.0,
        "metric.mig": 0.1,
        "feasible": 1.0,
        "hostname": "vm",
    }
    cb.on_trial_result(0, [], trial, final)
    trial.last_result = final
    cb.on_trial_complete(0, [], trial)
    (run,) = children(client, exp)
    assert run.info.status == "FINISHED" and run.data.tags["feasible"] == "true"
    assert run.data.metrics["metric.mig"] == 0.1 and "hostname" not in run.data.metrics
    assert run.data.params["beta"] == "4.0" and run.data.params["gamma"] == "n/a"


def test_a_finished_trial_keeps_its_final_checkpoint_and_its_weights_once(store, tmp_path):
    """Once MLflow holds the model, the trial's folder keeps its final checkpoint without the
    optimiser state and with weights.json for the weights; a rebuilt MLflow database gets the
    model back from there. A checkpoint that is not final is never pruned."""
    import json

    import mlflow
    import safetensors.torch
    from ray import tune

    from betavae.config import TrainConfig
    from betavae.models import build_model

    client, exp, parent, uri = store
    trial_dir = tmp_path / "b4-z6-s1-fin"
    for index in range(3):
        model_dir = trial_dir / f"checkpoint_{index:06d}" / "model"
        model_dir.mkdir(parents=True)
        (model_dir / "trainer_state.pt").write_bytes(b"adam" * 1000)
        (model_dir.parent / "history.jsonl").write_text('{"step": 10, "train/loss": 1.0}\n')
        safetensors.torch.save_file(build_model("burgess", 6, 1).state_dict(),
                                    str(model_dir / "model.safetensors"))  # fmt: skip
        (model_dir / "config.json").write_text(json.dumps(TrainConfig(latent_dim=6).to_dict()))
    final_dir = trial_dir / "checkpoint_000002"
    (final_dir / "artifacts").mkdir()
    for picture in ("traversals.png", "reconstructions.png", "kl_per_latent.png"):
        (final_dir / "artifacts" / picture).write_bytes(b"png")
    weights = (final_dir / "model" / "model.safetensors").read_bytes()
    final = {"step": 40, "final": 1.0, "recon_nll": 80.0, "metric.mig": 0.1, "feasible": 1.0}
    (final_dir / "result.json").write_text(json.dumps({**final, "input_shape": [1, 64, 64]}))

    not_final = FakeTrial("mid", checkpoint=tune.Checkpoint(str(trial_dir / "checkpoint_000001")))
    from sweeps.store.finished import keep_only_final

    assert keep_only_final(not_final.checkpoint, None) == 0
    assert len(list(trial_dir.glob("checkpoint_*/model/trainer_state.pt"))) == 3

    trial = FakeTrial("fin", checkpoint=tune.Checkpoint(str(final_dir)))
    trial.last_result = final
    cb = MLflowTracking(uri, exp, parent, background=False)
    cb.on_trial_start(0, [], trial)
    trial.error = "worker lost"  # in ERROR: everything kept for --resume to retry it from
    cb.on_trial_error(0, [], trial)
    assert len(list(trial_dir.glob("checkpoint_*/model/trainer_state.pt"))) == 3
    trial.error = None
    cb.on_trial_start(0, [], trial)  # retried, and this time it finishes
    cb.on_trial_result(0, [], trial, final)
    cb.on_trial_complete(0, [], trial)
    assert sorted(p.name for p in trial_dir.iterdir()) == ["checkpoint_000002"]
    assert sorted(p.name for p in (final_dir / "model").iterdir()) == ["config.json",
                                                                        "weights.json"]  # fmt: skip
    # The pictures are MLflow's; the folder keeps the one the report's fallback reads.
    assert [p.name for p in (final_dir / "artifacts").iterdir()] == ["traversals.png"]
    reference = json.loads((final_dir / "model" / "weights.json").read_text())
    (run,) = children(client, exp)
    assert reference["model_id"] == run.data.tags["betavae.model_id"]
    stored = mlflow.artifacts.download_artifacts(reference["weights_uri"], tracking_uri=uri)
    assert Path(stored).read_bytes() == weights  # the same bytes, once

    # --rebuild-mlflow into a new database: the model comes back from the reference.
    rebuilt = MlflowClient(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    again = experiment_id(rebuilt, "unit")
    new_parent = parent_run(rebuilt, again, "/sweeps/unit", run_name="unit", tags={}, params={})
    cb = MLflowTracking(f"sqlite:///{tmp_path / 'rebuilt.db'}", again, new_parent,
                        background=False)  # fmt: skip
    cb.on_trial_start(0, [], trial)
    cb.on_trial_complete(0, [], trial)
    (run,) = children(rebuilt, again)
    assert run.info.status == "FINISHED" and "betavae.model_id" in run.data.tags
    assert "artifacts_error" not in run.data.tags
    # ... and the pictures the folder gave up come back from the old run's artifacts.
    names = {a.path for a in rebuilt.list_artifacts(run.info.run_id)}
    assert {"traversals.png", "reconstructions.png", "kl_per_latent.png"} <= names


def test_a_driver_killed_after_the_model_was_logged_ends_the_run_on_resume(
    store, tmp_path, monkeypatch
):
    """A driver killed after the model was logged, before the folder is pruned and the last
    tag set, leaves the run RUNNING with its model (the model is logged outside the run, so
    logging it no longer ends the run); the next driver completes it, the model once."""
    import json

    import safetensors.torch
    from ray import tune

    import sweeps.tracking.writer as writer_module
    from betavae.config import TrainConfig
    from betavae.models import build_model

    client, exp, parent, uri = store
    final_dir = tmp_path / "b4-z6-s1-cut" / "checkpoint_000000"
    (final_dir / "model").mkdir(parents=True)
    (final_dir / "model" / "trainer_state.pt").write_bytes(b"adam" * 1000)
    safetensors.torch.save_file(build_model("burgess", 6, 1).state_dict(),
                                str(final_dir / "model" / "model.safetensors"))  # fmt: skip
    (final_dir / "model" / "config.json").write_text(
        json.dumps(TrainConfig(latent_dim=6).to_dict())
    )
    final = {"step": 40, "final": 1.0, "recon_nll": 80.0, "metric.mig": 0.1, "feasible": 1.0}
    (final_dir / "result.json").write_text(json.dumps({**final, "input_shape": [1, 64, 64]}))
    trial = FakeTrial("cut", checkpoint=tune.Checkpoint(str(final_dir)))
    trial.last_result = final

    def killed(*args, **kwargs):
        raise SystemExit("kill -9")  # not an Exception: nothing the writer catches

    with monkeypatch.context() as patch:
        patch.setattr(writer_module, "prune", killed)
        cb = MLflowTracking(uri, exp, parent, background=False)
        cb.on_trial_start(0, [], trial)
        cb.on_trial_result(0, [], trial, final)
        with pytest.raises(SystemExit):
            cb.on_trial_complete(0, [], trial)
    (run,) = children(client, exp)
    assert run.info.status == "RUNNING" and "feasible" not in run.data.tags  # the window
    assert "betavae.model_id" in run.data.tags
    assert (final_dir / "model" / "trainer_state.pt").exists()

    again = MLflowTracking(uri, exp, parent, background=False)  # the next driver
    again.on_trial_complete(0, [], trial)
    (run,) = children(client, exp)
    assert run.info.status == "FINISHED" and run.data.tags["feasible"] == "true"
    assert len(run.outputs.model_outputs) == 1  # not logged twice
    assert sorted(p.name for p in (final_dir / "model").iterdir()) == ["config.json",
                                                                        "weights.json"]  # fmt: skip


def test_errors_end_the_run_failed_with_the_reason(store):
    client, exp, parent, uri = store
    cb = MLflowTracking(uri, exp, parent, background=False)
    crashed = FakeTrial(
        "crash",
        error="Traceback (most recent call last):\n  File x\nRuntimeError: CUDA out of memory\n",
    )
    cb.on_trial_start(0, [], crashed)
    cb.on_trial_error(0, [], crashed)
    diverged = FakeTrial("nan", last_result={"step": 30, "error": "diverged: loss is not finite"})
    cb.on_trial_start(0, [], diverged)
    cb.on_trial_complete(0, [], diverged)
    runs = {r.data.tags["betavae.trial_id"]: r for r in children(client, exp)}
    assert runs["crash"].info.status == "FAILED"
    assert runs["crash"].data.tags["error"] == "RuntimeError: CUDA out of memory"
    assert runs["nan"].info.status == "FAILED"
    assert runs["nan"].data.tags["error"].startswith("diverged")


def test_capacity_params_mark_beta_unused():
    config = {
        **CONFIG,
        "objective": "capacity",
        "capacity_max": 30.0,
        "gamma": 100.0,
        "anneal_fraction": 0.5,
    }
    params = trial_params(config)
    assert params["beta"] == "n/a" and params["capacity_anneal_steps"] == "20"
    assert params["capacity_max"] == "30.0" and params["gamma"] == "100.0"


def test_last_line_of_a_traceback():
    assert last_line("Traceback:\n  File a\nValueError: bad\n") == "ValueError: bad"


def test_a_local_stores_artifacts_live_beside_its_database(tmp_path, monkeypatch):
    """Not in ./mlruns of whatever directory the sweep started in."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    database = tmp_path / "store" / "m.db"
    database.parent.mkdir()
    client = MlflowClient(f"sqlite:///{database}")
    exp = experiment_id(client, "beside")
    run = client.create_run(exp)
    picture = tmp_path / "p.txt"
    picture.write_text("x")
    client.log_artifact(run.info.run_id, str(picture))
    logged = list((database.parent / "mlartifacts").rglob("p.txt"))
    assert len(logged) == 1 and not (elsewhere / "mlruns").exists()
    # MLflow 3's UI opens it on the runs table, not the GenAI overview
    experiment = client.get_experiment(exp)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment_id(client, "beside") == exp  # found again, not recreated


def test_child_runs_carry_mlflows_source_tags(store):
    from sweeps.tracking.runs import source_tags

    client, exp, parent, uri = store
    tags = source_tags("0123abcd+dirty", "betavae-sweep")
    assert tags["mlflow.source.git.commit"] == "0123abcd"
    assert "mlflow.source.git.commit" not in source_tags("unknown", "betavae-sweep")
    cb = MLflowTracking(uri, exp, parent, run_tags=tags, background=False)
    cb.on_trial_start(0, [], FakeTrial("t1"))
    run = client.get_run(cb.writer.runs["t1"])
    assert run.data.tags["mlflow.source.name"] == "betavae-sweep"
    assert run.data.tags["mlflow.source.git.commit"] == "0123abcd"


def test_a_trained_model_is_an_mlflow_model_that_encodes_images(store, tmp_path):
    """Logged from the trial's safetensors file (nothing pickled), loaded back with
    mlflow.pyfunc, it gives the same codes as the model itself."""
    import json

    import mlflow
    import numpy as np
    import safetensors.torch
    import torch

    from betavae.config import TrainConfig
    from betavae.models import build_model
    from sweeps.tracking.runs import log_trained_model

    client, exp, _, uri = store
    model = build_model("burgess", 6, 1).eval()
    folder = tmp_path / "model"
    folder.mkdir()
    safetensors.torch.save_file(model.state_dict(), str(folder / "model.safetensors"))
    config = TrainConfig(latent_dim=6, steps=10).to_dict()
    (folder / "config.json").write_text(json.dumps(config))
    run = client.create_run(exp).info.run_id
    log_trained_model(uri, run, folder, [1, 64, 64], 6)

    (logged,) = mlflow.search_logged_models(experiment_ids=[exp], output_format="list")
    assert logged.source_run_id == run
    # Named among the run's outputs (the UI's "Logged models"), logged without ending the run.
    after = client.get_run(run)
    assert [o.model_id for o in after.outputs.model_outputs] == [logged.model_id]
    assert after.info.status == "RUNNING" and str(logged.status) == "READY"
    loaded = mlflow.pyfunc.load_model(logged.model_uri)
    assert loaded.metadata.get_input_schema().inputs[0].shape == (-1, 1, 64, 64)
    images = np.random.default_rng(0).random((5, 1, 64, 64), dtype=np.float32)
    codes = loaded.predict(images)
    with torch.inference_mode():
        expected = model.encode(torch.from_numpy(images))[0].numpy()
    assert codes.shape == (5, 6)
    np.testing.assert_allclose(codes, expected, rtol=1e-5, atol=1e-6)
    artifacts = mlflow.artifacts.list_artifacts(f"{logged.artifact_location}/artifacts")
    assert {a.path.rsplit("/", 1)[-1] for a in artifacts} == {"model.safetensors", "config.json"}
    # Where betavae is not installed, the model runs the copy of betavae/models.py it carries.
    np.save(tmp_path / "images.npy", images)
    alone = (
        "import sys; sys.modules['betavae'] = None\n"  # import betavae → ImportError
        "import mlflow, numpy as np\n"
        f"mlflow.set_tracking_uri({uri!r})\n"
        f"codes = mlflow.pyfunc.load_model({logged.model_uri!r}).predict("
        f"np.load({str(tmp_path / 'images.npy')!r}))\n"
        f"np.save({str(tmp_path / 'codes.npy')!r}, codes)\n"
    )
    subprocess.run([sys.executable, "-c", alone], check=True, capture_output=True, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "codes.npy"), expected, rtol=1e-5, atol=1e-6)
    (shipped,) = mlflow.artifacts.list_artifacts(f"{logged.artifact_location}/code")
    assert shipped.path.endswith("betavae_models.py") and shipped.file_size < 20_000


def test_a_torn_history_line_is_skipped_not_fatal(tmp_path, caplog):
    """A crash mid-write leaves half a line; the rows before and after it still count."""
    from analysis.trial_files import read_history

    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 10, "train/loss": 5.0}\n{"step": 20, "tr\n{"step": 30}\n')
    assert [row["step"] for row in read_history(path)] == [10, 30]
    assert "line 2 is not a JSON row" in caplog.text
    assert read_history(tmp_path / "missing.jsonl") == []


def test_the_pickled_callback_holds_no_credential_and_follows_the_restoring_driver(
    store, tmp_path, monkeypatch
):
    """Tune pickles the callback into the sweep folder: no password there. The driver that
    restores the sweep hands its store over; another store than the first (a new
    --tracking-uri) gets the runs written there, and every ended trial again at the end."""
    import pickle

    from sweeps.config import live

    client, exp, parent, uri = store
    secret = MLflowTracking("http://user:hunter2@127.0.0.1:9/", exp, parent, background=False)
    assert b"hunter2" not in pickle.dumps(secret)

    monkeypatch.setattr(live, "LIVE", live.Live())
    first = MLflowTracking(uri, exp, parent, background=False)
    done = FakeTrial("done", last_result={"step": 40, "final": 1.0, "metric.mig": 0.2})
    first.on_trial_start(0, [], done)
    first.on_trial_complete(0, [], done)
    blob, state = pickle.dumps(first), first.get_state()

    other_uri = f"sqlite:///{tmp_path / 'other.db'}"
    other = MlflowClient(other_uri)
    other_exp = experiment_id(other, "unit")
    other_parent = parent_run(other, other_exp, "/sweeps/unit", run_name="unit", tags={},
                              params={})  # fmt: skip
    live.configure(stall_timeout_s=None, backup=None, tracking=(other_uri, other_exp, other_parent))
    restored = pickle.loads(blob)
    restored.set_state(state)
    assert restored.writer.tracking_uri == other_uri and not restored.writer.ended
    running = FakeTrial("running")
    restored.on_trial_start(0, [], running)
    done.status, running.status = "TERMINATED", "RUNNING"  # "done" ended under the first
    restored.on_experiment_end([done, running])
    moved = {r.data.tags["betavae.trial_id"]: r.info.status for r in children(other, other_exp)}
    assert moved == {"done": "FINISHED", "running": "RUNNING"}
    assert len(children(client, exp)) == 1  # the first store is left as it was
