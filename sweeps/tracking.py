"""MLflow records of a sweep: one parent run, one nested child run per Tune trial.

Logging happens on the driver, in a Tune ``Callback``, so trials never talk to the tracking
server (one writer for a sqlite store; no credentials on workers). Runs are found before they
are created: the parent by the tag ``betavae.sweep_dir`` (the sweep's storage folder), a child
by ``betavae.trial_id`` under that parent. With the trial → run map also saved in Tune's
experiment state (``get_state``/``set_state``), a resumed sweep writes into the same runs and
never duplicates one. Curves are logged once per step: steps at or below the last one logged
are skipped, so a trial that restarts from its checkpoint does not log its steps twice.

A tracking server that goes away does not stop the sweep: a curve point that cannot be logged
is skipped with a warning (MLflow's client has already retried it with back-off), and when the
trial ends its whole curve is back-filled from the ``history.jsonl`` of its final checkpoint.
Ending a trial (final metrics, artifacts, status) is retried for up to ``patience_s`` seconds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    Metric,
    Param,
    RunStatus,
    RunTag,
)
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from analysis.schema import (
    ERROR_TAG,
    MODEL_ID_TAG,
    NODE_TAG,
    OPTUNA_TRIAL_KEY,
    OPTUNA_TRIAL_TAG,
    PARENT_TAG,
    ROLE_TAG,
    SETTING_TAG,
    SWEEP_DIR_TAG,
    TRIAL_ID_TAG,
    setting_id,
)
from sweeps.trainable import ARTIFACTS, HISTORY, MODEL_DIR, RESULT
from sweeps.trial_config import TrialConfig

logger = logging.getLogger(__name__)
#: Final-result keys logged as metrics besides every ``metric.*`` score.
FINAL_KEYS = ("recon_nll", "kl", "active_latents", "feasible", "eval_seconds")
_MAX_TAG = 5000


@functools.cache
def git_commit(path: Path | None = None) -> str:
    """The checkout's commit (``+dirty`` if modified), or ``unknown`` outside a git checkout."""
    where = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty.strip() else "")


def source_tags(commit: str, command: str) -> dict[str, str]:
    """MLflow's own source tags: the runs table's Source column and the commit it links."""
    tags = {"mlflow.source.name": command, "mlflow.source.type": "LOCAL"}
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("+dirty")
    return tags


#: MLflow 3's UI opens an experiment of this kind on its runs table (not the GenAI overview).
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def local_artifact_root(tracking_uri: str) -> str | None:
    """``sqlite:///DIR/mlflow.db`` → ``file:///DIR/mlartifacts``: a local store's artifacts live
    beside its database (MLflow's own default is ``./mlruns`` of whatever directory the sweep
    happened to start in). None for other stores: their server decides."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    database = Path(tracking_uri[len(prefix) :].split("?", 1)[0])
    return (database.resolve().parent / "mlartifacts").as_uri()


def experiment_id(client: MlflowClient, name: str) -> str:
    """The sweep's experiment (created, or restored if deleted), marked as model development."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        root = local_artifact_root(client.tracking_uri)
        location = f"{root}/{quote(name, safe='')}" if root else None
        experiment_id = client.create_experiment(name, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment_id)
    for key, value in EXPERIMENT_KIND.items():
        client.set_experiment_tag(experiment_id, key, value)
    return experiment_id


def _find_runs(client: MlflowClient, experiment: str, **tags: str) -> list:
    clauses = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return client.search_runs(
        [experiment], filter_string=clauses, max_results=10, order_by=["attributes.start_time ASC"]
    )


def parent_run(
    client: MlflowClient,
    experiment: str,
    sweep_dir: str,
    *,
    run_name: str,
    tags: dict[str, str],
    params: dict[str, Any],
) -> str:
    """The sweep's parent run id: the existing one for ``sweep_dir``, else a new one."""
    found = _find_runs(client, experiment, **{SWEEP_DIR_TAG: sweep_dir, ROLE_TAG: "sweep"})
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        return run_id
    run = client.create_run(
        experiment, run_name=run_name, tags={**tags, SWEEP_DIR_TAG: sweep_dir, ROLE_TAG: "sweep"}
    )
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial's MLflow params (see ``TrialConfig.mlflow_params``)."""
    return TrialConfig.from_tune(config).mlflow_params()


class MLflowTracking(Callback):
    """Tune callback: nested MLflow runs per trial, curves, final metrics, artifacts."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        parent_run_id: str,
        *,
        patience_s: float = 900.0,
        retry_every_s: float = 5.0,
        study_link: Any = None,
        run_tags: dict[str, str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.patience_s = patience_s
        self.retry_every_s = retry_every_s
        self.study_link = study_link  # (optuna trial number, run id) → the study's record
        self.run_tags = dict(run_tags or {})  # set on every child run (its source, …)
        self._unreachable_since: float | None = None
        self.runs: dict[str, str] = {}
        self.last_step: dict[str, int] = {}
        self._client: MlflowClient | None = None
        self._synced: set[str] = set()  # trials whose MLflow state this process has read

    # -- state Tune saves with the experiment ------------------------------------------
    def get_state(self) -> dict:
        return {
            "runs": dict(self.runs),
            "last_step": dict(self.last_step),
            "parent_run_id": self.parent_run_id,
        }

    def set_state(self, state: dict) -> None:
        self.runs.update(state.get("runs", {}))
        for trial_id, step in state.get("last_step", {}).items():
            self.last_step[trial_id] = max(step, self.last_step.get(trial_id, -1))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None, "_synced": set()}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    # -- runs ------------------------------------------------------------------------------
    def run_id(self, trial: Any) -> str:
        """The trial's child run: remembered, else found by tag, else created.

        The first time this driver process meets a trial, the last step already in MLflow
        counts too: the saved state can be older than what was logged before a crash.
        """
        trial_id = trial.trial_id
        if trial_id in self._synced:
            return self.runs[trial_id]
        run_id = self.runs.get(trial_id)
        if run_id is None:
            found = _find_runs(
                self.client,
                self.experiment,
                **{TRIAL_ID_TAG: trial_id, PARENT_TAG: self.parent_run_id},
            )
            run_id = found[0].info.run_id if found else None
            if found and not found[0].data.params:  # created just before an outage
                self._log_params(run_id, trial.config)
        if run_id is not None:
            history = self.client.get_metric_history(run_id, "train/loss")
            logged = max((m.step for m in history), default=-1)
            self.last_step[trial_id] = max(logged, self.last_step.get(trial_id, -1))
        else:
            tags = {
                **self.run_tags,
                PARENT_TAG: self.parent_run_id,
                TRIAL_ID_TAG: trial_id,
                ROLE_TAG: "trial",
                SETTING_TAG: setting_id(trial.config),
            }
            number = trial.config.get(OPTUNA_TRIAL_KEY)
            if number is not None:
                tags[OPTUNA_TRIAL_TAG] = str(number)
            run = self.client.create_run(self.experiment, run_name=str(trial), tags=tags)
            run_id = run.info.run_id
            self._log_params(run_id, trial.config)
            if number is not None and self.study_link is not None:
                try:
                    self.study_link(int(number), run_id)
                except Exception as err:  # the link is a convenience; the runs are not
                    logger.warning("Optuna trial %s not linked to run %s: %s", number, run_id, err)
        self._synced.add(trial_id)
        self.runs[trial_id] = run_id
        return run_id

    # -- a server that goes away -------------------------------------------------------
    def _best_effort(self, what: str, action: Any) -> None:
        """Run ``action``; if MLflow fails, warn (once per outage) and go on."""
        try:
            action()
        except Exception as err:
            if self._unreachable_since is None:
                self._unreachable_since = time.monotonic()
                logger.warning(
                    "MLflow at %s failed (%s: %s); the sweep goes on, and each trial's curves "
                    "are back-filled from its checkpoint when it ends",
                    self.tracking_uri,
                    what,
                    _last_line(str(err)),
                )
            return
        if self._unreachable_since is not None:
            logger.warning(
                "MLflow at %s answers again after %.0f s",
                self.tracking_uri,
                time.monotonic() - self._unreachable_since,
            )
            self._unreachable_since = None

    def _patiently(self, what: str, action: Any) -> None:
        """Run ``action`` until it succeeds or ``patience_s`` has passed (then raise)."""
        deadline = time.monotonic() + self.patience_s
        while True:
            try:
                action()
                return
            except Exception as err:
                if time.monotonic() >= deadline:
                    raise
                logger.warning(
                    "MLflow at %s failed (%s: %s); retrying for up to %.0f s more",
                    self.tracking_uri,
                    what,
                    _last_line(str(err)),
                    deadline - time.monotonic(),
                )
                time.sleep(self.retry_every_s)

    # -- Tune events -----------------------------------------------------------------------
    def _log_params(self, run_id: str, config: dict[str, Any]) -> None:
        params = trial_params(config)
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._best_effort(
            "marking a run RUNNING",
            lambda: self.client.update_run(self.run_id(trial), status="RUNNING"),
        )

    on_trial_restore = on_trial_start

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self._best_effort("logging a result", lambda: self._log_result(trial, result))

    def _log_result(self, trial: Any, result: dict) -> None:
        run_id = self.run_id(trial)
        step = int(result.get("step", 0))
        now = int(time.time() * 1000)
        if result.get("final"):
            keys = [k for k in result if k.startswith("metric.") or k in FINAL_KEYS]
        elif step > self.last_step.get(trial.trial_id, -1):
            keys = [k for k in result if k.startswith("train/")]
        else:
            return
        metrics = [
            Metric(k, float(result[k]), now, step)
            for k in keys
            if isinstance(result[k], int | float)
        ]
        tags = [RunTag(NODE_TAG, str(result["node_id"]))] if result.get("node_id") else []
        if metrics or tags:
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if not result.get("final"):
            self.last_step[trial.trial_id] = step

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._patiently("ending a trial's run", lambda: self._complete(trial))

    def _complete(self, trial: Any) -> None:
        run_id = self.run_id(trial)
        result = trial.last_result or {}
        if result.get("error"):
            self._fail(run_id, str(result["error"]))
            return
        if trial.checkpoint is not None:
            self._backfill(run_id, trial.checkpoint)
        if result.get("final") and not any(
            k.startswith("metric.") for k in self.client.get_run(run_id).data.metrics
        ):
            self._log_result(trial, result)  # the final result met an outage
        if trial.checkpoint is not None:
            try:
                self._log_artifacts(run_id, trial.checkpoint)
            except Exception as err:  # the run keeps its metrics; say what is missing
                logger.warning("artifacts of %s not logged: %s", trial, err)
                self.client.set_tag(run_id, "artifacts_error", str(err)[:_MAX_TAG])
        self.client.set_tag(run_id, "feasible", str(bool(result.get("feasible"))).lower())
        self.client.set_terminated(run_id, status="FINISHED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = None
        with contextlib.suppress(Exception):  # the reason is best effort; the status is not
            error = trial.get_error()
        reason = _last_line(error) if error else "trial failed"
        self._patiently("failing a trial's run", lambda: self._fail(self.run_id(trial), reason))

    def _backfill(self, run_id: str, checkpoint: Any) -> None:
        """Log the curve points of the checkpoint's history that MLflow lacks (an outage)."""
        with checkpoint.as_directory() as directory:
            path = Path(directory) / HISTORY
            rows = [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []
        logged = {m.step for m in self.client.get_metric_history(run_id, "train/loss")}
        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, int(row["step"]))
            for row in rows
            if int(row["step"]) not in logged
            for k, v in row.items()
            if k.startswith("train/") and isinstance(v, int | float)
        ]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            self.client.log_batch(run_id, metrics=metrics[start : start + 1000])
        if metrics:
            logger.warning("back-filled %d curve values of run %s", len(metrics), run_id)

    def _fail(self, run_id: str, reason: str) -> None:
        self.client.log_batch(run_id, tags=[RunTag(ERROR_TAG, reason[:_MAX_TAG])])
        self.client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED))

    def _log_artifacts(self, run_id: str, checkpoint: Any) -> None:
        with checkpoint.as_directory() as directory:
            root = Path(directory)
            if (root / ARTIFACTS).is_dir():
                self.client.log_artifacts(run_id, str(root / ARTIFACTS))
            if not (root / RESULT).is_file():
                return
            self.client.log_artifact(run_id, str(root / RESULT))
            final = json.loads((root / RESULT).read_text())
            if "dataset" in final:
                self.client.log_inputs(run_id, datasets=[dataset_input(final["dataset"])])
            tags = self.client.get_run(run_id).data.tags
            weights = root / MODEL_DIR / "model.safetensors"
            if MODEL_ID_TAG not in tags and weights.is_file() and "input_shape" in final:
                config = json.loads((root / MODEL_DIR / "config.json").read_text())
                model_id = log_trained_model(
                    self.tracking_uri,
                    run_id,
                    root / MODEL_DIR,
                    final["input_shape"],
                    int(config["latent_dim"]),
                )
                self.client.set_tag(run_id, MODEL_ID_TAG, model_id)


def dataset_input(dataset: dict[str, Any]) -> DatasetInput:
    """A trial's training data as an MLflow dataset input: its spec, content digest, shape."""
    return DatasetInput(
        Dataset(
            name=dataset["spec"],
            digest=dataset["digest"],
            source_type="code",
            source=json.dumps({"generator": "betavae.data.load_dataset", "spec": dataset["spec"]}),
            schema=json.dumps({"factors": dataset.get("factors", {})}),
            profile=json.dumps({"num_images": dataset.get("images")}),
        ),
        tags=[InputTag("mlflow.data.context", "training")],
    )


def log_trained_model(
    tracking_uri: str, run_id: str, model_dir: Path, input_shape: list[int], latent_dim: int
) -> str:
    """Log a trial's weights as an MLflow model of the run (``sweeps/mlflow_model.py``).

    The model is defined in code; its artifacts are ``model.safetensors`` and ``config.json``,
    and it carries the ``betavae`` package (``code_paths``), so loading it needs no install.
    Its signature: float32 images ``[-1, *input_shape]`` → float32 codes ``[-1, latent_dim]``.
    Returns the logged model's id.
    """
    from importlib.metadata import version

    import mlflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    import betavae

    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *input_shape))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, latent_dim))]),
    )
    requirements = [
        f"{name}=={version(name)}" for name in ("torch", "numpy", "safetensors", "mlflow")
    ]
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("mlflow_model.py")),
            artifacts={
                "weights": str(model_dir / "model.safetensors"),
                "config": str(model_dir / "config.json"),
            },
            code_paths=[str(Path(betavae.__file__).parent)],
            model_config={"channels": int(input_shape[0])},
            signature=signature,
            input_example=np.zeros((1, *input_shape), np.float32),  # a blank image
            pip_requirements=requirements,
        )
    return info.model_id


def _last_line(text: str) -> str:
    """The exception line of a traceback (what a user wants in a tag)."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith(" "):
            return line.strip()
    return lines[-1].strip() if lines else "trial failed"
