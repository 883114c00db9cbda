"""After Tune returns: Optuna's open trials closed, MLflow compared with Tune's results, the
frontier document and report built, or an interrupted sweep's parent run ended KILLED.

``finish`` runs them in order once the trials have ended (``sweeps.driver.run``); they read
Tune's results (the ``ResultGrid``) and never start a trial.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from analysis.redaction import redact
from analysis.schema import REPORT_DIR, SUMMARY_FILE, setting_id
from analysis.trial_files import folder_trial_id
from sweeps.config.settings import PROG, SweepSettings, sweep_record
from sweeps.driver.lost import end_runs, tell_finished
from sweeps.driver.parent import ParentRun
from sweeps.driver.signals import Interrupts
from sweeps.search.study import (
    fail_lone_seeds,
    fail_unplaced_trials,
    note_errored_trials,
    one_replay,
)
from sweeps.store.folder import SweepFolder
from sweeps.tracking.reconcile import missing_in_mlflow, statuses, tune_ends


def finish(
    settings: SweepSettings, folder: SweepFolder, parent: ParentRun, grid: Any,
    interrupts: Interrupts,
) -> dict[str, Any]:  # fmt: skip
    """The end of a driver's run, what ``main`` prints: stopped by a signal (the parent run
    KILLED, no report), or the trials ended (Optuna closed, MLflow compared with Tune, the
    frontier document, ``summary.json``, the report and the parent run's summary)."""
    if interrupts.received:
        return interrupted(parent, grid, interrupts)
    with one_replay():  # the journal replayed once for all of Optuna's closing
        close_errored_trials(settings, folder, grid)
    log_late_scores(parent)
    folder.upload_study()  # remote storage: the whole journal again, now with those ends
    sweep, missing = read_mlflow(settings, folder, parent, grid)
    doc, report = summarise(settings, folder, parent, grid, sweep)
    folder.write_text(SUMMARY_FILE, json.dumps(doc, indent=2, default=str))
    parent.finish(doc, settings.metric_key)
    best = register_best_model(parent, settings.name, doc)
    return {
        "best_model": best,
        "document": doc,
        "report": report,
        "parent_run_id": parent.run_id,
        "experiment_id": parent.experiment,
        "mlflow_missing": missing,
    }


def register_best_model(parent: ParentRun, name: str, doc: dict[str, Any]) -> str | None:
    """``models:/NAME@best`` pointed at the best feasible model (``sweeps.tracking.registry``);
    its URI, or None. A registry that refuses is a warning: the sweep's result stands."""
    from sweeps.tracking.registry import BEST_ALIAS, register_best

    try:
        version = register_best(parent.client, name, doc)
    except Exception as err:
        print(f"{PROG}: warning: the best model was not registered: {redact(str(err))}",
              file=sys.stderr)  # fmt: skip
        return None
    return None if version is None else f"models:/{name}@{BEST_ALIAS}"


def log_late_scores(parent: ParentRun) -> None:
    """Scores computed across seeds after the MLflow callback ended (a retried trial's setting
    scored at the sweep's end), into their runs; a run MLflow cannot find or take is left,
    with a warning (the report scores the setting from the codes)."""
    from sweeps.config import live
    from sweeps.tracking.runs import log_seed_scores

    for trial_id, scores in live.take_scores().items():
        try:
            log_seed_scores(parent.client, parent.experiment, parent.run_id, trial_id, scores)
        except Exception as err:
            print(f"{PROG}: warning: the UDR of trial {trial_id} did not reach MLflow "
                  f"({redact(str(err))})", file=sys.stderr)  # fmt: skip


def result_trial_id(result: Any) -> str:
    """A Tune ``Result``'s trial id: from its metrics, else its folder's name (``…-<id>``)."""
    return (result.metrics or {}).get("trial_id") or folder_trial_id(Path(result.path or "").name)


def close_errored_trials(settings: SweepSettings, folder: SweepFolder, grid: Any) -> None:
    """Optuna after Tune's end: the open trials of trials Tune finished get their results (a
    retried ERROR trial's result does not reach the searcher), and those of trials in ERROR,
    left open for a --resume to retry, get the reason (``sweeps.search.study``)."""
    errored, finished = {}, {}
    for result in grid:
        metrics = result.metrics or {}
        trial_id = result_trial_id(result)
        if result.error is not None:
            errored[trial_id] = (str(result.error).splitlines() or ["failed"])[-1]
        elif metrics.get("final") or metrics.get("error"):
            finished[trial_id] = metrics
    journal = folder.study_location
    udr = tell_finished(settings, folder, finished)
    if errored:
        note_errored_trials(journal, settings.name, errored)
    # An Optuna trial asked for a Tune trial that Tune never recorded (a driver killed between
    # the two) would stay RUNNING for ever: it ends FAIL, and the study says why.
    fail_unplaced_trials(journal, settings.name, {result_trial_id(r) for r in grid})
    if udr is not None:  # seeds whose setting never got a second one (none of it retried)
        fail_lone_seeds(journal, settings.name)


def read_mlflow(
    settings: SweepSettings, folder: SweepFolder, parent: ParentRun, grid: Any
) -> tuple[Any, list]:
    """The sweep as MLflow holds it (``analysis.runs.Sweep``), read once, and the trials Tune
    ended that MLflow does not show ended the same way (``sweeps.tracking.reconcile``).

    The sweep is a string saying why it is not used when MLflow cannot be read or lacks
    trials Tune ended: the summary is then built from Tune's results.
    """
    from analysis.runs import child_runs, sweep_from_runs

    ends = tune_ends((result_trial_id(r), r.metrics, r.error is not None) for r in grid)
    client = parent.client
    try:
        children = child_runs(client, parent.experiment, parent.run_id)
        children = end_runs(settings, folder, parent, children, {result_trial_id(r) for r in grid})
        source = f"mlflow:{redact(settings.tracking_uri)}#{settings.name}"
        sweep = sweep_from_runs(client, source, client.get_run(parent.run_id), children)
    except Exception as err:  # MLflow unreachable, or its runs lost
        return f"MLflow could not be read ({redact(str(err))})", []
    missing = missing_in_mlflow(statuses(children), ends)
    return ("MLflow lacks trials that Tune ended" if missing else sweep), missing


def interrupted(parent: ParentRun, grid: Any, interrupts: Interrupts) -> dict[str, Any]:
    """A signal stopped the sweep: the parent run ends KILLED, and no report is written (a
    report claims to be the sweep's result; ``--resume`` writes it when the sweep ends)."""
    finished = sum(1 for result in grid if (result.metrics or {}).get("final"))
    parent.stopped(str(interrupts.name), finished)
    return {
        "interrupted": interrupts,
        "finished": finished,
        "parent_run_id": parent.run_id,
        "experiment_id": parent.experiment,
    }


def summarise(
    settings: SweepSettings, folder: SweepFolder, parent: ParentRun, grid: Any, sweep: Any,
) -> tuple[dict[str, Any], str | None]:  # fmt: skip
    """The frontier document, built once, and the report written from it.

    ``sweep``: the trials as MLflow holds them (``read_mlflow``), or why not; then (or if its
    document cannot be built) Tune's results are summarised. A report that fails is a
    warning: the document (and ``summary.json``) still stands.
    """
    from analysis.report import build_document, write_report

    try:
        if isinstance(sweep, str):
            raise RuntimeError(sweep)
        doc = build_document(sweep)
    except Exception as err:
        print(f"{PROG}: warning: {redact(str(err))}; summarising Tune's results", file=sys.stderr)
        sweep = tune_sweep(settings, folder, grid)
        doc = build_document(sweep)
    out = folder.report_dir
    try:
        write_report(sweep, out, doc)
        if not folder.is_local:
            folder.upload_dir(out, REPORT_DIR)
        parent.client.log_artifacts(parent.run_id, str(out), "report")
    except Exception as err:
        print(f"{PROG}: warning: the frontier report failed: {redact(str(err))}", file=sys.stderr)
        reason = redact(f"{type(err).__name__}: {err}")[:5000]
        parent.client.set_tag(parent.run_id, "report_error", reason)
        return doc, None
    return doc, str(out / "report.html")


def tune_sweep(settings: SweepSettings, folder: SweepFolder, grid: Any):
    """The sweep as Tune's results hold it (``analysis.runs.Sweep``), without MLflow."""
    from analysis.runs import Sweep, build_table
    from sweeps.tracking.runs import trial_params

    records = []
    for result in grid:
        metrics, config = result.metrics or {}, result.config or {}
        trial_id = result_trial_id(result)
        error = metrics.get("error")
        if error is None and result.error is not None:
            error = (str(result.error).splitlines() or ["failed"])[-1]
        status = "FAILED" if error else ("FINISHED" if metrics.get("final") else "RUNNING")
        params = trial_params(config) if "objective" in config else {}
        records.append(
            {
                **params,
                **{k: v for k, v in metrics.items() if k.startswith("metric.")},
                **{k: metrics.get(k) for k in ("recon_nll", "kl", "active_latents")},
                "trial_id": trial_id,
                "run_id": None,
                "run_name": Path(result.path or trial_id).name,
                "status": status,
                "error": error,
                "setting": setting_id(config),
            }
        )
    if settings.metric == "udr":  # scored across seeds: not in any trial's result
        from analysis.runs import score_udr
        from sweeps.search.udr import SettingUDR

        score_udr(records, SettingUDR(folder.shown).codes)
    record = sweep_record(settings)
    info = {**record["settings"], "metric_key": record["metric_key"], "scoring": record["scoring"]}
    return Sweep(build_table(records), info, f"tune:{folder.shown}")
