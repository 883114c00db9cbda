"""The record a sweep leaves: MLflow tag and parameter names, file names, what a *setting* is.

A leaf module (no torch, Ray or MLflow): ``sweeps`` writes the record with these names and
``analysis`` reads it with the same ones, so neither side copies a literal.

A *setting* is every searched value except the seed: the seed replicates of one setting
share its id (:func:`setting_id`) and its label (:func:`setting_label`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# -- MLflow tags ------------------------------------------------------------------------------
SWEEP_DIR_TAG = "betavae.sweep_dir"  # parent run: the sweep's storage folder
ROLE_TAG = "betavae.role"  # "sweep" (the parent) or "trial" (a child)
TRIAL_ID_TAG = "betavae.trial_id"
#: Logged beside ``metric.udr``: how many of the setting's seeds the score stands on (its step).
UDR_SEEDS_KEY = "udr.seeds"
SETTING_TAG = "betavae.setting"  # shared by the seed replicates of one setting
SCORING_TAG = "betavae.scoring"  # parent run: how the scores were measured (JSON)
ERROR_TAG = "error"
INTERRUPTED_TAG = "interrupted"  # parent run: the signal that stopped the sweep (until --resume)
MODEL_ID_TAG = "betavae.model_id"  # child run: its trained model, logged as an MLflow model
NODE_TAG = "ray.node_id"  # the Ray node the trial finished on
PARENT_TAG = "mlflow.parentRunId"
OPTUNA_TRIAL_TAG = "optuna.trial_number"  # child run → its trial in the sweep's Optuna study
OPTUNA_STUDY_TAG = "optuna.study_name"  # parent run → the study (in STUDY_FILE)

# -- the Optuna study (``STUDY_FILE``) ---------------------------------------------------------
OPTUNA_TRIAL_KEY = "optuna_trial"  # a trial's config: its Optuna trial number
REPLICATE_ATTR = "replicate"  # trial user_attr: 0 for a sampled setting, k for its k-th reseed
TUNE_TRIAL_ATTR = "tune_trial_id"  # trial user_attr
#: Trial user_attr, True on a trial failed because Tune cannot resume it (started by a killed
#: driver after its last Tune snapshot): not counted against ``num_samples``, others replace it.
LOST_ATTR = "lost"
MLFLOW_RUN_ATTR = "mlflow_run_id"  # trial user_attr: the child run
RECON_ATTR = "recon_nll"  # trial user_attr: the final reconstruction NLL
PARENT_RUN_ATTR = "mlflow_parent_run_id"  # study user_attr: the sweep's parent run
SETTINGS_ATTR = "sweep_settings"  # study user_attr: the settings the sweep started with
SWEEP_DIR_ATTR = "sweep_dir"  # study user_attr: the sweep's storage folder
SEARCH_PLAN_ATTR = "search_plan"  # study user_attr: how the sweep searches (sweeps.search.plan)

# -- what a trial trained ---------------------------------------------------------------------
#: The searched values that make a setting (the seed is not one of them).
SETTING_KEYS = ("objective", "beta", "capacity_max", "anneal_fraction", "gamma", "latent_dim")
#: A trial's parameters as the trial table holds them (unused by its family: null).
PARAMS = (
    "objective",
    "beta",
    "gamma",
    "capacity_max",
    "capacity_anneal_steps",
    "anneal_fraction",
    "latent_dim",
    "seed",
    "replicate",
    "steps",
    "batch_size",
    "lr",
    "dataset",
    "model",
)
#: The parameters every seed of a setting shares (``PARAMS`` without the seed).
SETTING_PARAMS = tuple(p for p in PARAMS if p not in ("seed", "replicate"))

# -- files in a sweep folder (``STORAGE/NAME/``) and its report -------------------------------
SETTINGS_FILE = "sweep.json"  # the settings a sweep started with
SUMMARY_FILE = "summary.json"  # the frontier document when the sweep ended
STUDY_FILE = "optuna.journal"
DRIVER_FILE = "driver.json"  # the live driver's lease: host, pid, since (sweeps.store.lease)
SPOOL_FILE = "mlflow.spool.jsonl"  # MLflow records a driver has queued but not yet sent
REPORT_DIR = "report"
FRONTIER_FILE = "frontier.json"
TRIALS_FILE = "trials.parquet"


def anneal_steps(anneal_fraction: float, steps: int) -> int:
    """The capacity anneal in steps: a fraction of training, at least one step."""
    return max(1, round(float(anneal_fraction) * int(steps)))


def setting_id(config: Mapping[str, Any]) -> str:
    """A short id shared by every seed replicate of one sampled setting."""
    text = json.dumps({k: config.get(k) for k in SETTING_KEYS}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def setting_label(config: Mapping[str, Any], *, seed: bool = False) -> str:
    """``β=4, z=10`` or ``C=25, γ=1e+03, z=10`` (``…, seed 1`` with ``seed=True``)."""
    if config.get("objective") == "capacity":
        what = f"C={float(config['capacity_max']):.3g}, γ={float(config['gamma']):.3g}"
        if config.get("capacity_anneal_steps") is not None:
            what += f", anneal {int(config['capacity_anneal_steps']):,}"
    else:
        what = f"β={float(config['beta']):.3g}"
    label = f"{what}, z={config['latent_dim']}"
    return f"{label}, seed {config['seed']}" if seed else label
