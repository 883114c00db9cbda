"""The sweep's MLflow parent run: found by its sweep folder's tag or created, ended FAILED or
KILLED with the reason, or FINISHED with the sweep's summary (the driver and
``--rebuild-mlflow`` share it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from analysis.redaction import redact
from analysis.schema import INTERRUPTED_TAG, OPTUNA_STUDY_TAG, SCORING_TAG, SUMMARY_FILE
from sweeps.config.settings import PROG, SweepSettings, scoring
from sweeps.search.plan import SAMPLER_CLASSES, search_plan
from sweeps.tracking.runs import experiment_id, git_commit, parent_run, source_tags


def run_source_tags() -> dict[str, str]:
    """MLflow's source tags of this sweep's runs: the command and the checkout's commit."""
    return source_tags(git_commit(), PROG)


def parent_tags(settings: SweepSettings) -> dict[str, str]:
    protocol = scoring(settings)
    return {
        **run_source_tags(),
        "preset": settings.preset,
        "objective": settings.objective,
        "metric": settings.metric_key,
        "recon_budget": str(settings.recon_budget),
        "search": json.dumps(settings.search_settings(), sort_keys=True),
        "sampler": f"optuna.{SAMPLER_CLASSES[search_plan(settings).sampler]}",
        OPTUNA_STUDY_TAG: settings.name,
        "git_commit": git_commit(),
        "metric_mode": str(protocol["mode"]),
        "dci_predictor": str(protocol["predictor"]),
        SCORING_TAG: json.dumps(protocol, sort_keys=True),
    }


@dataclass(frozen=True)
class ParentRun:
    """``client``: an ``MlflowClient`` of the tracking URI; ``experiment``: the sweep's
    experiment id; ``run_id``: the parent run's."""

    client: Any
    experiment: str
    run_id: str

    @classmethod
    def open(cls, settings: SweepSettings, sweep_dir: str) -> ParentRun:
        """The parent run of the sweep folder ``sweep_dir`` (as shown): found, else created."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(settings.tracking_uri)
        experiment = experiment_id(client, settings.name)
        run_id = parent_run(
            client,
            experiment,
            sweep_dir,
            run_name=settings.name,
            tags=parent_tags(settings),
            params=settings.to_dict(),
        )
        return cls(client, experiment, run_id)

    def failed(self, err: BaseException) -> None:
        """The driver stopped with ``err``: KILLED for an interrupt, else FAILED."""
        self.client.set_tag(self.run_id, "error", redact(f"{type(err).__name__}: {err}")[:5000])
        killed = isinstance(err, KeyboardInterrupt)
        self.client.set_terminated(self.run_id, status="KILLED" if killed else "FAILED")

    def stopped(self, signal_name: str, finished: int) -> None:
        """A signal stopped the sweep with ``finished`` trials done: KILLED until --resume."""
        self.client.set_tag(self.run_id, INTERRUPTED_TAG, signal_name)
        self.client.log_metric(self.run_id, "trials_finished", finished)
        self.client.set_terminated(self.run_id, status="KILLED")

    def finish(self, doc: dict[str, Any], metric_key: str) -> None:
        """The sweep ended: its summary (``summary.json``) and counts, then FINISHED."""
        self.client.log_dict(self.run_id, json.loads(json.dumps(doc, default=str)), SUMMARY_FILE)
        counts = doc["counts"]
        self.client.log_metric(self.run_id, "trials_finished", counts["finished"])
        self.client.log_metric(self.run_id, "trials_failed", counts["failed"])
        self.client.log_metric(self.run_id, "settings_feasible", counts["feasible_settings"])
        if doc["best_feasible"]:
            median = doc["best_feasible"]["metric"]["median"]
            self.client.log_metric(self.run_id, f"best.{metric_key}.median", median)
        self.client.set_terminated(self.run_id, status="FINISHED")
