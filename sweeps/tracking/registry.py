"""The sweep's best model in MLflow's model registry: ``models:/NAME@best``.

At the end of each driver's run (the first, and every ``--resume``), the model of the best
feasible setting's median seed (the frontier document's ``best_feasible``) becomes a version of
the registered model named after the sweep, and the alias ``best`` points at it. A consumer
loads ``mlflow.pyfunc.load_model("models:/NAME@best")`` instead of searching thousands of runs.
A new version is made only when the best changes; the old versions stay (each names its run).
"""

from __future__ import annotations

import logging
from typing import Any

from mlflow.exceptions import MlflowException

from analysis.schema import MODEL_ID_TAG

logger = logging.getLogger(__name__)

BEST_ALIAS = "best"
#: On each registered version: the trial and setting it is, for the registry's UI.
VERSION_TAGS = ("betavae.trial_id", "betavae.setting")


def best_run(doc: dict[str, Any]) -> tuple[str, str] | None:
    """``(trial id, run id)`` of the best feasible setting's median seed, if it has a run."""
    best = doc.get("best_feasible") or {}
    trial_id = best.get("median_trial_id")
    for trial in doc.get("trials", []):
        if trial.get("trial_id") == trial_id and trial.get("run_id"):
            return trial_id, trial["run_id"]
    return None


def register_best(client: Any, name: str, doc: dict[str, Any]) -> str | None:
    """Point ``models:/NAME@best`` at the best feasible trial's model; returns its version
    (None: no feasible trial, or its run has no model)."""
    found = best_run(doc)
    if found is None:
        return None
    trial_id, run_id = found
    model_id = client.get_run(run_id).data.tags.get(MODEL_ID_TAG)
    if not model_id:
        return None
    try:
        current = client.get_model_version_by_alias(name, BEST_ALIAS)
    except MlflowException as err:  # no such model, or no alias yet (what the stores answer)
        if err.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        current = None
    if current is not None and current.run_id == run_id:
        return str(current.version)
    try:
        client.create_registered_model(
            name, description=f"The best feasible model of the sweep {name!r} (alias @best)."
        )
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    setting = (doc.get("best_feasible") or {}).get("setting", "")
    version = client.create_model_version(
        name,
        source=f"models:/{model_id}",
        run_id=run_id,
        model_id=model_id,
        tags=dict(zip(VERSION_TAGS, (trial_id, setting), strict=True)),
        description=(doc.get("best_feasible") or {}).get("label"),
    )
    client.set_registered_model_alias(name, BEST_ALIAS, version.version)
    return str(version.version)
