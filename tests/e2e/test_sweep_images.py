"""A sweep on the user's own images (a folder of PNGs, no labels): UDR is its score.

Each setting's two seeds are scored against each other once both finished; Optuna, MLflow and
the report agree on every trial's UDR, and the report shows each frontier setting's traversals.
"""

from __future__ import annotations

import json
import math

import pytest
from sweep_support import child_runs, run_sweep, smoke_argv, storage, tracking_uri

pytestmark = pytest.mark.slow


def image_folder(folder) -> None:
    """60 colour pictures of a disc at random places (80 × 96 px: cropped and resampled)."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(0)
    folder.mkdir()
    for i in range(60):
        picture = Image.new("RGB", (96, 80), (20, 20, 20))
        x, y = rng.randint(10, 70), rng.randint(10, 50)
        ImageDraw.Draw(picture).ellipse(
            [x, y, x + 20, y + 20], fill=(rng.randint(50, 255), 100, 200)
        )
        picture.save(folder / f"{i:03d}.png")


def test_a_sweep_on_unlabelled_images_scores_udr_across_seeds(tmp_path):
    image_folder(tmp_path / "mine")
    argv = smoke_argv(
        tmp_path, "mine", "--dataset", f"images:{tmp_path / 'mine'}", "--recon-budget", "6000"
    )  # no --metric: UDR is the default on images; the smoke preset runs 2 seeds per setting
    done = run_sweep(argv, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "metric.udr waits for another seed of the setting" in done.stdout

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    sweep = storage(tmp_path) / "mine"
    study = optuna.load_study(
        study_name="mine",
        storage=JournalStorage(JournalFileBackend(str(sweep / "optuna.journal"))),
    )
    told = {t.user_attrs["tune_trial_id"]: t.values[0] for t in study.trials}
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4
    assert all(0 < v <= 1 for v in told.values())
    assert sorted(p.stem for p in (sweep / "udr_codes").iterdir()) == sorted(told)

    runs = child_runs(tracking_uri(tmp_path), "mine")
    logged = {r.data.tags["betavae.trial_id"]: r.data.metrics["metric.udr"] for r in runs}
    assert logged == pytest.approx(told)  # two seeds a setting: the pair's scores, once
    assert all(r.data.params["dataset"].startswith("images:") for r in runs)

    report = json.loads((sweep / "report" / "frontier.json").read_text())
    assert report["objectives"][0]["key"] == "metric.udr"
    by_trial = {t["trial_id"]: t["metrics"]["metric.udr"] for t in report["trials"]}
    assert by_trial == pytest.approx(told)
    for setting in report["settings"]:
        values = [told[t] for t in setting["trial_ids"]]
        assert setting["metric"]["median"] == pytest.approx(sum(values) / 2)
    assert (sweep / "report" / "traversals.png").is_file()
    assert not any(math.isnan(v) for v in by_trial.values())

    # A lost MLflow store rebuilt from the sweep's storage gets each seed's UDR back.
    rebuilt = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    again = run_sweep([*argv, "--tracking-uri", rebuilt, "--rebuild-mlflow"], tmp_path)
    assert again.returncode == 0, again.stderr[-4000:]
    runs = child_runs(rebuilt, "mine")
    assert {r.data.tags["betavae.trial_id"]: r.data.metrics["metric.udr"] for r in runs} == (
        pytest.approx(told)
    )
