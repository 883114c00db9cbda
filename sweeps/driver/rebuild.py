"""``--rebuild-mlflow``: write a sweep's MLflow runs from Tune's state and checkpoints.

Tune's experiment state and the trials' checkpoints are the sweep's ground truth; MLflow's runs
are a view a lost or restored store can lack. ``rebuild`` writes the runs a live sweep would
have written (the parent, one child per trial with its params, curves from the checkpoints'
histories, final scores, pictures and model), through the same writer, found or created by
tag: running it twice writes nothing the second time. It holds the sweep's driver lease while it
writes (``sweeps.store.lease``): refused while a driver runs the sweep, which writes those runs
itself, and a driver started meanwhile is refused in turn.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from ray.tune import ExperimentAnalysis

from analysis.schema import SETTINGS_FILE, SUMMARY_FILE
from sweeps.config.settings import PROG, SweepSettings, UsageError
from sweeps.driver.credentials import keys_in_a_private_file
from sweeps.driver.parent import ParentRun, run_source_tags
from sweeps.driver.resume import as_saved
from sweeps.driver.snapshot import results_without_dataframes
from sweeps.store.folder import SweepFolder
from sweeps.store.lease import DriverLease
from sweeps.tracking.callback import error_reason, kept_result
from sweeps.tracking.reconcile import mlflow_children
from sweeps.tracking.writer import MLflowWriter


def saved_settings(settings: SweepSettings, folder: SweepFolder) -> SweepSettings:
    """The sweep's settings as ``sweep.json`` holds them, with this command's name, storage,
    tracking URI and address (``sweep.json`` holds those redacted)."""
    text = folder.read_text(SETTINGS_FILE)
    if text is None:
        raise UsageError(f"--rebuild-mlflow: no sweep named {settings.name!r} at {folder.shown}")
    this_command = frozenset({"name", "storage_path", "tracking_uri", "address"})
    saved = as_saved(settings, json.loads(text), keep=this_command)
    return dataclasses.replace(saved, resume=True, dry_run=False)


def rebuild(settings: SweepSettings) -> dict[str, Any]:
    """Write the MLflow runs of the sweep ``settings`` names from Tune's state (idempotent)."""
    folder = SweepFolder(settings.storage_path, settings.name)
    with keys_in_a_private_file(folder.credentials()):
        saved = saved_settings(settings, folder)
        with DriverLease(folder, then="run --rebuild-mlflow again"):
            return _rebuild(saved, folder)


def _rebuild(settings: SweepSettings, folder: SweepFolder) -> dict[str, Any]:
    _, experiment_path = folder.tune_paths()
    with results_without_dataframes():
        analysis = ExperimentAnalysis(experiment_path)
    parent = ParentRun.open(settings, folder.shown)
    client, experiment = parent.client, parent.experiment
    writer = MLflowWriter(
        settings.tracking_uri, experiment, parent.run_id, run_tags=run_source_tags(),
        background=False,
    )  # fmt: skip
    before = mlflow_children(client, experiment, parent.run_id)
    for trial in analysis.trials:
        record = {"trial_id": trial.trial_id, "name": str(trial), "config": dict(trial.config)}
        result = trial.last_result or {}
        if trial.status == "ERROR" or result.get("error"):
            reason = result.get("error") or error_reason(trial)
            writer.submit({**record, "op": "error", "reason": reason})
        elif result.get("final"):
            kept = kept_result(result)
            writer.submit({**record, "op": "complete", "result": kept}, checkpoint=trial.checkpoint)
        else:
            writer.record_unfinished(record, trial.checkpoint)
    if settings.metric == "udr":
        log_setting_udr(parent, folder, analysis.trials)
    summary = folder.read_text(SUMMARY_FILE)
    if summary is not None:
        client.log_dict(parent.run_id, json.loads(summary), SUMMARY_FILE)
    client.set_terminated(parent.run_id, status="FINISHED" if summary is not None else "KILLED")
    after = mlflow_children(client, experiment, parent.run_id)
    return {
        "trials": len(analysis.trials),
        "runs_before": len(before),
        "runs_after": len(after),
        "experiment_id": experiment,
        "parent_run_id": parent.run_id,
    }


def log_setting_udr(parent: ParentRun, folder: SweepFolder, trials: list) -> None:
    """Each setting's finished seeds scored against each other from the codes they left
    (``sweeps.search.udr``), into their runs (``metric.udr`` at the step of the seeds behind
    it): what the sweep logged as seeds finished. A lone seed has no score, as in the sweep."""
    from analysis.schema import setting_id
    from sweeps.search.udr import SettingUDR
    from sweeps.tracking.runs import log_seed_scores

    finished: dict[str, list[str]] = {}
    for trial in trials:
        result = trial.last_result or {}
        if trial.status != "ERROR" and result.get("final") and not result.get("error"):
            finished.setdefault(setting_id(trial.config), []).append(trial.trial_id)
    udr = SettingUDR(folder.shown)
    for setting, seeds in finished.items():
        if len(seeds) < 2:
            continue
        try:
            scores = udr.score(seeds)
        except ValueError as err:
            print(f"{PROG}: warning: setting {setting}: UDR not scored ({err})", file=sys.stderr)
            continue
        for trial_id, values in scores.items():
            log_seed_scores(parent.client, parent.experiment, parent.run_id, trial_id, values)
