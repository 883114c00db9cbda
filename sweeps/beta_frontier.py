"""Sweep β-VAEs for the disentanglement / reconstruction frontier.

    python sweeps/beta_frontier.py                      # cpu preset, local Ray, sqlite MLflow
    python sweeps/beta_frontier.py --preset smoke       # a 1-minute end-to-end check
    ray submit cluster/gpu.yaml sweeps/beta_frontier.py -- --preset paper

Ray Tune runs the trials (``--cpus-per-trial``, fractional ``--gpus-per-trial``), Optuna
samples β-objective and capacity-objective settings (at random: the plan measured best,
``sweeps.search.plan``) to maximise ``--metric`` subject to ``recon_nll ≤ --recon-budget`` (or
to search the whole Pareto front with ``--objective pareto``), MLflow records one parent run
and one child run per trial. Every value is validated before Ray starts; ``--resume``
continues an interrupted sweep.

This file is the command: flags in (``sweeps.config``), the driver's outcome printed
(``sweeps.driver``); docs/ARCHITECTURE.md follows one sweep through the layers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from analysis.redaction import redact
from sweeps.config import PROG, UsageError, exit_on_usage_error, parse_settings


def __getattr__(name: str) -> Any:
    """``trial_name``, where sweeps started before ``sweeps/driver/`` pickled it (Tune's
    ``tuner.pkl``); imported on first use, so parsing flags imports no Ray or torch."""
    if name == "trial_name":
        from sweeps.driver.tuner import trial_name

        return trial_name
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    from analysis.frontier import format_summary

    try:
        settings = parse_settings(argv)
        # The driver's modules import Ray, MLflow and torch: only once the flags are checked.
        if settings.dry_run:
            from sweeps.driver.dry_run import dry_run

            print(json.dumps(dry_run(settings), indent=2, ensure_ascii=False))
            return 0
        if settings.rebuild_mlflow:
            from sweeps.driver.rebuild import rebuild

            done = rebuild(settings)
            print(
                f"{done['trials']} trials in Tune's state; MLflow held {done['runs_before']} of "
                f"their runs and now holds {done['runs_after']}"
            )
            print(mlflow_ui_lines(settings.tracking_uri, done["experiment_id"]))
            return 0
        from sweeps.driver.run import run

        outcome = run(settings)
        settings = outcome["settings"]  # a resumed sweep's own (sweeps.driver.resume)
    except UsageError as err:
        exit_on_usage_error(err)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue the sweep with --resume", file=sys.stderr)
        return 130
    if "interrupted" in outcome:
        stop = outcome["interrupted"]
        print(
            f"{PROG}: stopped by {stop.name} with {outcome['finished']} of "
            f"{settings.num_samples} trials finished; nothing is lost: continue with "
            f"--name {settings.name} --resume (no report until the sweep ends)",
            file=sys.stderr,
        )
        print(mlflow_ui_lines(settings.tracking_uri, outcome["experiment_id"]))
        return stop.exit_code
    print(format_summary(outcome["document"]))
    if outcome["report"]:
        print(f"report: {outcome['report']}")
    if outcome.get("best_model"):
        print(f"best model: mlflow.pyfunc.load_model({outcome['best_model']!r})")
    print(mlflow_ui_lines(settings.tracking_uri, outcome["experiment_id"]))
    if outcome["mlflow_missing"]:
        shown = ", ".join(
            f"{t} ({tune}; MLflow: {ml})" for t, tune, ml in outcome["mlflow_missing"]
        )
        print(
            f"{PROG}: WARNING: MLflow does not hold {len(outcome['mlflow_missing'])} trial(s) as "
            f"Tune ended them: {shown}. The report above was built from Tune's results. Rebuild "
            f"the runs with: {PROG} --name {settings.name} --storage-path "
            f"{redact(settings.storage_path)} --tracking-uri {redact(settings.tracking_uri)} "
            "--rebuild-mlflow",
            file=sys.stderr,
        )
        return 3
    if not outcome["document"]["counts"]["finished"]:
        # Everything is recorded (failed trials with their reasons), but a scheduler or a
        # script must not mistake an empty frontier for a result.
        print(f"{PROG}: no trial finished: see the failed trials above", file=sys.stderr)
        return 1
    return 0


def mlflow_ui_lines(tracking_uri: str, experiment: str) -> str:
    """Where to browse the sweep: the experiment's runs table (and the command to serve it).

    MLflow 3.17's UI picks its GenAI or model-training view from the URL's ``workflowType``
    (else the browser's last choice, GenAI at first), not from the experiment's kind tag.
    """
    page = f"#/experiments/{experiment}?workflowType=machine_learning"
    tracking_uri = redact(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return f"MLflow: {tracking_uri.rstrip('/')}/{page}"
    mlflow = Path(sys.executable).parent / "mlflow"
    if mlflow.is_relative_to(Path.cwd()):
        mlflow = mlflow.relative_to(Path.cwd())
    return (
        f"MLflow UI: {mlflow} ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000\n"
        f"  then open http://127.0.0.1:5000/{page}"
    )


if __name__ == "__main__":
    sys.exit(main())
