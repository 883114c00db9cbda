"""After Tune returns: Optuna's open trials closed, MLflow compared with Tune's results, the
frontier document and report built, or an interrupted sweep's parent run ended KILLED.

``sweeps.beta_frontier`` calls these once the trials have ended; they read Tune's results
(the ``ResultGrid``) and never start a trial.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from analysis.redaction import redact
from analysis.schema import INTERRUPTED_TAG, setting_id
from sweeps.interrupts import Interrupts
from sweeps.settings import PROG, SweepSettings, sweep_record
from sweeps.storage import copy_report, report_dir, study_path, upload_study


def result_trial_id(result: Any) -> str:
    """A Tune ``Result``'s trial id: from its metrics, else its folder's name (``…-<id>``)."""
    return (result.metrics or {}).get("trial_id") or Path(result.path or "").name.rsplit("-", 1)[-1]


def close_errored_trials(settings: SweepSettings, grid: Any) -> None:
    """Optuna after Tune's end: the open trials of trials Tune finished get their results (a
    retried ERROR trial's result does not reach the searcher), and those of trials in ERROR,
    left open for a --resume to retry, get the reason (``sweeps.search``)."""
    from sweeps.search import note_errored_trials, tell_unreported

    errored, finished = {}, {}
    for result in grid:
        metrics = result.metrics or {}
        trial_id = result_trial_id(result)
        if result.error is not None:
            errored[trial_id] = (str(result.error).splitlines() or ["failed"])[-1]
        elif metrics.get("final") or metrics.get("error"):
            finished[trial_id] = metrics
    journal = str(study_path(settings))
    pareto = settings.objective == "pareto"
    keys = [settings.metric_key, "recon_nll"] if pareto else [settings.metric_key]
    told = tell_unreported(journal, settings.name, finished, keys, settings.recon_budget)
    if errored:
        note_errored_trials(journal, settings.name, errored)
    if told or errored:
        upload_study(settings)  # remote storage: the bucket's copy gets them too


def compare_with_mlflow(client: Any, experiment: str, parent: str, grid: Any) -> list:
    """The trials Tune ended that MLflow does not show ended the same way (see
    ``sweeps.reconcile``); [] when MLflow cannot be read (the summary says so itself)."""
    from sweeps.reconcile import missing_in_mlflow, tune_ends

    ends = tune_ends(
        (
            result_trial_id(r),
            r.metrics,
            r.error is not None,
        )
        for r in grid
    )
    try:
        return missing_in_mlflow(client, experiment, parent, ends)
    except Exception:
        return []


def interrupted(
    settings: SweepSettings, client: Any, parent: str, grid: Any, interrupts: Interrupts,
    experiment: str,
) -> dict[str, Any]:  # fmt: skip
    """A signal stopped the sweep: the parent run ends KILLED, and no report is written (a
    report claims to be the sweep's result; ``--resume`` writes it when the sweep ends)."""
    finished = sum(1 for result in grid if (result.metrics or {}).get("final"))
    client.set_tag(parent, INTERRUPTED_TAG, interrupts.name)
    client.log_metric(parent, "trials_finished", finished)
    client.set_terminated(parent, status="KILLED")
    return {
        "interrupted": interrupts,
        "finished": finished,
        "parent_run_id": parent,
        "experiment_id": experiment,
    }


def summarise(
    settings: SweepSettings, client: Any, parent: str, grid: Any, *, from_tune: bool = False
) -> tuple[dict[str, Any], str | None]:
    """The frontier document, built once, and the report written from it.

    The trials are read from MLflow; from Tune's results when MLflow cannot be read or lacks
    trials Tune ended (``from_tune``). A report that fails is a warning: the document (and
    ``summary.json``) still stands.
    """
    from analysis.report import build_document, write_report
    from analysis.runs import load_mlflow

    try:
        if from_tune:
            raise RuntimeError("it lacks trials that Tune ended")
        sweep = load_mlflow(settings.tracking_uri, settings.name, parent)
        doc = build_document(sweep)
    except Exception as err:  # MLflow unreachable, or its runs lost
        print(
            f"{PROG}: warning: MLflow could not be read ({redact(str(err))}); summarising "
            "Tune's results",
            file=sys.stderr,
        )
        sweep = tune_sweep(settings, grid)
        doc = build_document(sweep)
    out = report_dir(settings)
    try:
        write_report(sweep, out, doc)
        if not settings.storage_is_local:
            copy_report(settings, out)
        client.log_artifacts(parent, str(out), "report")
    except Exception as err:
        print(f"{PROG}: warning: the frontier report failed: {redact(str(err))}", file=sys.stderr)
        client.set_tag(parent, "report_error", f"{type(err).__name__}: {err}"[:5000])
        return doc, None
    return doc, str(out / "report.html")


def tune_sweep(settings: SweepSettings, grid: Any):
    """The sweep as Tune's results hold it (``analysis.runs.Sweep``), without MLflow."""
    from analysis.runs import Sweep, build_table
    from sweeps.mlflow_runs import trial_params

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
    record = sweep_record(settings)
    info = {**record["settings"], "metric_key": record["metric_key"], "scoring": record["scoring"]}
    return Sweep(build_table(records), info, f"tune:{settings.shown_experiment_path}")
