"""MLflow against Tune: what a sweep's MLflow store lacks, and rebuilding it from Tune's state.

Tune's experiment state and the trials' checkpoints are the sweep's ground truth (they live in
the sweep's storage); MLflow's runs are a view of them that a lost or restored store can
lack. ``missing_in_mlflow`` compares the two at the end of every sweep; ``rebuild`` (the
``--rebuild-mlflow`` command) writes the runs a live sweep would have written (the parent, one
child per trial with its params, curves from the checkpoints' histories, final scores,
pictures and model), through the same writer, found or created by tag: running it twice
writes nothing the second time.
"""

from __future__ import annotations

import json
from typing import Any

from analysis.schema import PARENT_TAG, SETTINGS_FILE, SUMMARY_FILE, TRIAL_ID_TAG
from sweeps.settings import SweepSettings, UsageError


def mlflow_children(client: Any, experiment: str, parent: str) -> dict[str, str]:
    """Trial id → status of the parent's child runs."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'", page_token=token
        )
        runs += list(page)
        token = page.token
        if not token:
            break
    return {r.data.tags.get(TRIAL_ID_TAG): r.info.status for r in runs}


def missing_in_mlflow(client: Any, experiment: str, parent: str, trials: dict[str, str]) -> list:
    """``(trial id, Tune's end, MLflow's status)`` of every trial Tune ended that MLflow does not
    show ended the same way; ``trials``: trial id → "FINISHED" or "FAILED" (as Tune ended it)."""
    children = mlflow_children(client, experiment, parent)
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


def saved_settings(settings: SweepSettings) -> SweepSettings:
    """The sweep's settings as ``sweep.json`` holds them, with this command's name, storage,
    tracking URI and address (``sweep.json`` holds those redacted)."""
    import dataclasses

    from sweeps.storage import read_text

    text = read_text(settings, SETTINGS_FILE)
    if text is None:
        raise UsageError(
            f"--rebuild-mlflow: no sweep named {settings.name!r} at "
            f"{settings.shown_experiment_path}"
        )
    saved = json.loads(text)["settings"]
    known = {f.name for f in dataclasses.fields(SweepSettings)}
    values = {k: v for k, v in saved.items() if k in known}
    for key in ("name", "storage_path", "tracking_uri", "address"):
        values[key] = getattr(settings, key)
    values.update(resume=True, dry_run=False)
    for key, value in values.items():
        if isinstance(value, list):
            values[key] = tuple(value)
    return SweepSettings(**values)


def rebuild(settings: SweepSettings) -> dict[str, Any]:
    """Write the MLflow runs of the sweep ``settings`` names from Tune's state (idempotent)."""
    from ray.tune import ExperimentAnalysis

    from sweeps.beta_frontier import open_parent_run, run_source_tags
    from sweeps.mlflow_writer import MLflowWriter
    from sweeps.storage import read_text, tune_storage
    from sweeps.tracking import MLflowTracking, _reason

    settings = saved_settings(settings)
    _, experiment_path = tune_storage(settings)
    analysis = ExperimentAnalysis(experiment_path)
    client, experiment, parent = open_parent_run(settings)
    writer = MLflowWriter(
        settings.tracking_uri, experiment, parent, run_tags=run_source_tags(), background=False
    )
    before = mlflow_children(client, experiment, parent)
    for trial in analysis.trials:
        record = {"trial_id": trial.trial_id, "name": str(trial), "config": dict(trial.config)}
        result = trial.last_result or {}
        if trial.status == "ERROR" or result.get("error"):
            reason = result.get("error") or _reason(trial)
            writer.submit({**record, "op": "error", "reason": reason})
        elif result.get("final"):
            kept = MLflowTracking._kept(result)
            writer.submit({**record, "op": "complete", "result": kept}, checkpoint=trial.checkpoint)
        else:
            writer.record_unfinished(record, trial.checkpoint)
    summary = read_text(settings, SUMMARY_FILE)
    if summary is not None:
        client.log_dict(parent, json.loads(summary), SUMMARY_FILE)
    client.set_terminated(parent, status="FINISHED" if summary is not None else "KILLED")
    after = mlflow_children(client, experiment, parent)
    return {
        "trials": len(analysis.trials),
        "runs_before": len(before),
        "runs_after": len(after),
        "experiment_id": experiment,
        "parent_run_id": parent,
    }
