"""The typed trial config: built once from Tune's dict, strict about keys, owner of what is
derived (anneal steps, feasibility, the TrainConfig, MLflow params, names)."""

from __future__ import annotations

import math

import pytest

from sweeps.config import parse_settings
from sweeps.driver.tuner import trial_constants
from sweeps.trial.config import TrialConfig

CAPACITY = {
    "objective": "capacity",
    "capacity_max": 25.0,
    "anneal_fraction": 0.25,
    "gamma": 100.0,
    "latent_dim": 10,
    "seed": 3,
    "replicate": 1,
    "optuna_trial": 7,
}


def sweep_config(**searched):
    return {**trial_constants(parse_settings(["--preset", "smoke"])), **searched}


def test_a_sweeps_trial_config_reads_back_with_its_derived_values():
    trial = TrialConfig.from_tune(sweep_config(**CAPACITY))
    steps = trial.steps
    assert trial.capacity_anneal_steps == round(0.25 * steps)
    train = trial.train_config()
    assert (train.capacity_max, train.gamma, train.seed) == (25.0, 100.0, 3)
    assert train.capacity_anneal_steps == trial.capacity_anneal_steps
    assert trial.feasible(trial.recon_budget) and not trial.feasible(trial.recon_budget + 1)
    assert not trial.feasible(math.nan)
    params = trial.mlflow_params()
    assert params["beta"] == "n/a" and params["anneal_fraction"] == "0.25"
    assert params["replicate"] == "1"
    assert trial.dirname("abc_00001") == "C25-g100-z10-s3-abc_00001"
    assert trial.label() == "C=25, γ=100, z=10, seed 3"


def test_beta_trials_have_no_anneal_and_mark_capacity_unused():
    trial = TrialConfig.from_tune(
        sweep_config(objective="beta", beta=4.0, latent_dim=5, seed=0, replicate=0)
    )
    assert trial.capacity_anneal_steps is None and trial.train_config().beta == 4.0
    params = trial.mlflow_params()
    assert params["gamma"] == params["capacity_max"] == "n/a" and params["beta"] == "4.0"


def test_an_unknown_key_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['bta'\]"):
        TrialConfig.from_tune(sweep_config(**CAPACITY, bta=4.0))
    with pytest.raises(ValueError, match="objective 'vae'; allowed: beta, capacity"):
        TrialConfig.from_tune(sweep_config(**{**CAPACITY, "objective": "vae"}))


def test_the_config_is_frozen():
    trial = TrialConfig.from_tune(sweep_config(**CAPACITY))
    with pytest.raises(AttributeError):
        trial.seed = 4  # type: ignore[misc]
