"""MLflow against Tune: what a sweep's MLflow store lacks.

Tune's experiment state and the trials' checkpoints are the sweep's ground truth (they live in
the sweep's storage); MLflow's runs are a view of them that a lost or restored store can
lack. ``missing_in_mlflow`` compares the two at the end of every sweep; ``--rebuild-mlflow``
(``sweeps.driver.rebuild``) writes what is missing.
"""

from __future__ import annotations

from typing import Any

from analysis.runs import child_runs
from analysis.schema import TRIAL_ID_TAG


def mlflow_children(client: Any, experiment: str, parent: str) -> dict[str, str]:
    """Trial id → status of the parent's child runs."""
    return statuses(child_runs(client, experiment, parent))


def statuses(children: list) -> dict[str, str]:
    """Trial id → status (MLflow's own: FINISHED, FAILED, RUNNING, KILLED, …) of child runs."""
    return {r.data.tags.get(TRIAL_ID_TAG): r.info.status for r in children}


def missing_in_mlflow(children: dict[str, str], trials: dict[str, str]) -> list:
    """``(trial id, Tune's end, MLflow's status)`` of every trial Tune ended that MLflow does not
    show ended the same way; ``children``: trial id → MLflow's status (``statuses``);
    ``trials``: trial id → "FINISHED" or "FAILED" (as Tune ended it)."""
    return [
        (trial_id, ended, children.get(trial_id, "absent"))
        for trial_id, ended in sorted(trials.items())
        if children.get(trial_id) != ended
    ]


def tune_ends(results: Any) -> dict[str, str]:
    """Tune's ended trials (a ``ResultGrid`` or ``ExperimentAnalysis`` trials): id → end."""
    ends = {}
    for trial_id, metrics, errored in results:
        if errored or (metrics or {}).get("error"):
            ends[trial_id] = "FAILED"
        elif (metrics or {}).get("final"):
            ends[trial_id] = "FINISHED"
    return ends
