"""The papers' capacity schedule runs that docs/REPRODUCTIONS.md reads (C to 25 nats over 100k
steps, 120k in all; hours of CPU training each) are kept in docs/data/paper-schedule: their
probes and final evaluation, and the final model's weights. Read again they give the verdicts,
latents and numbers the docs quote, without training."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.reproduce import capacity_order
from analysis.reproduce.training import FINAL

SAVED = Path(__file__).parents[2] / "docs" / "data" / "paper-schedule"


# (γ, seed): the verdict, the switched-on latents in switch-on order (factor, index, final KL),
# the held-out recon_nll, as docs/REPRODUCTIONS.md quotes them.
PARTLY = "partly reproduced"
RUNS = {
    (1000, 0): ("not reproduced", [("posX", 1, 12.61), ("posY", 2, 12.25)], 145.7),
    (100, 0): (PARTLY, [("posX", 1, 8.90), ("posY", 9, 8.95), ("scale", 5, 7.23)], 91.9),
    (100, 1): (PARTLY, [("posY", 0, 8.85), ("posX", 8, 8.88), ("scale", 2, 7.22)], 92.8),
}


@pytest.mark.parametrize(("gamma", "seed"), list(RUNS), ids=lambda v: str(v))
def test_the_saved_probes_give_the_verdict_the_docs_state(tmp_path, gamma, seed):
    name = f"seed{seed}"
    shutil.copytree(SAVED / f"gamma{gamma}" / "runs" / name, tmp_path / "runs" / name)
    run = json.loads((tmp_path / "runs" / name / FINAL).read_text())
    assert run["config"]["gamma"] == gamma and run["config"]["steps"] == 120_000
    assert run["config"]["capacity_anneal_steps"] == 100_000 and run["config"]["seed"] == seed

    result = capacity_order.analyse({name: run}, tmp_path, ignore_input=565.0)

    verdict, latents, recon = RUNS[gamma, seed]
    found = result["runs"][name]
    assert found["verdict"] == verdict
    assert [(x["factor"], x["latent"], round(x["kl"], 2)) for x in found["latents"]] == latents
    assert round(found["recon_nll"], 1) == recon
    assert (tmp_path / f"{name}.png").is_file()


# (γ, seed): the open latents' KL as labelled afresh, and the share of it in the variance term
# that every one of them exceeds; γ = 100's scale latent also carries some shape.
MODELS = {
    (1000, 0): ({1: 12.60, 2: 12.26}, 0.96),
    (100, 0): ({1: 8.90, 5: 7.22, 9: 8.96}, 0.94),
    (100, 1): ({0: 8.86, 2: 7.21, 8: 8.88}, 0.95),
}


@pytest.mark.parametrize(("gamma", "seed"), list(MODELS), ids=lambda v: str(v))
def test_the_saved_model_is_the_one_its_final_probe_measured(gamma, seed):
    """Labelled afresh from its weights alone, on the probe's 10,000 held-out images, the model
    carries what the run's final probe recorded, and its KL is what the docs quote: the open
    latents, most of each one's KL in the variance term.

    Not to the last bit: the information is a histogram of sampled codes, and a CPU of another
    kind than the one that trained (a later machine's AMD EPYC, say) moves codes across bin
    edges; the three models read 0.0005-0.0037 apart there. Another model, or another seed's,
    differs by tenths on the latents that carry a factor."""
    from analysis.reproduce.probes import label_checkpoint

    folder = SAVED / f"gamma{gamma}" / "runs" / f"seed{seed}"
    run = json.loads((folder / FINAL).read_text())

    labelled = label_checkpoint(folder / "model")

    np.testing.assert_allclose(labelled["information"], run["information"], atol=0.01)
    kl_quoted, variance_share = MODELS[gamma, seed]
    open_latents = sorted(kl_quoted)
    kl = np.array(labelled["kl_per_dim"])
    assert list(np.flatnonzero(kl > 0.5)) == open_latents
    # Quoted to 0.01, and another kind of CPU moves a KL by up to 0.01 (12.26 reads 12.251).
    np.testing.assert_allclose(kl[open_latents], list(kl_quoted.values()), atol=0.02)
    assert np.all(np.array(labelled["kl_variance_term"])[open_latents] / kl[open_latents]
                  > variance_share)  # fmt: skip


def test_labelling_a_folder_without_weights_says_what_is_missing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "analysis.reproduce.probes", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert f"{tmp_path}: not a saved model (no model.safetensors)" in done.stderr
