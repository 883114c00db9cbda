"""How a trial's child run ends in MLflow (``sweeps.tracking.writer`` calls these): the curve
points its checkpoint holds and MLflow lacks, its pictures, result, dataset and model, or its
failure with the reason; and whether MLflow already holds the whole end."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Run, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from analysis.redaction import redact
from analysis.schema import ERROR_TAG, MODEL_ID_TAG
from analysis.trial_files import ARTIFACTS, CONFIG_FILE, HISTORY, MODEL_DIR, RESULT, read_history
from sweeps.store.finished import weights_reference
from sweeps.tracking.finished_run import pictures_here, weights_here
from sweeps.tracking.runs import dataset_input, log_trained_model

logger = logging.getLogger(__name__)
#: The longest tag value logged (MLflow's limit is 8,000 characters).
MAX_TAG = 5000
#: The tag the writer sets last before marking a finished trial's run FINISHED. Versions
#: that logged the model inside the run (``start_run``) had it FINISHED before the pruning
#: and this tag: a run FINISHED without it was cut short there and is completed again.
FEASIBLE_TAG = "feasible"


def ended(run: Run) -> bool:
    """Whether MLflow holds the run's whole end: FAILED, or FINISHED with the last tag."""
    status = run.info.status
    return status == "FAILED" or (status == "FINISHED" and FEASIBLE_TAG in run.data.tags)


def fail(client: MlflowClient, run_id: str, reason: str) -> None:
    """The run FAILED, with ``reason`` (redacted, cut to ``MAX_TAG``) as its error tag."""
    client.log_batch(run_id, tags=[RunTag(ERROR_TAG, redact(reason)[:MAX_TAG])])
    client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.FAILED))


def backfill(
    client: MlflowClient, run_id: str, checkpoint: Any, logged: set[int] | None = None
) -> None:
    """Log the curve points of the checkpoint's history that MLflow lacks (an outage, a
    record dropped, a driver that was killed). ``logged``: the steps MLflow holds, if
    known (else read from it)."""
    with checkpoint.as_directory() as directory:
        rows = read_history(Path(directory) / HISTORY)
    if logged is None:
        logged = {m.step for m in client.get_metric_history(run_id, "train/loss")}
    now = int(time.time() * 1000)
    metrics = [
        Metric(k, float(v), now, int(row["step"]))
        for row in rows
        if int(row["step"]) not in logged
        for k, v in row.items()
        if k.startswith("train/") and isinstance(v, int | float)
    ]
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    if metrics:
        logger.warning("back-filled %d curve values of run %s", len(metrics), run_id)


def log_artifacts(client: MlflowClient, tracking_uri: str, run: Run, checkpoint: Any) -> str | None:
    """Log the checkpoint's pictures, result, dataset and model to ``run`` (as read when
    its end began). Returns the id of the model the run names then (None: none)."""
    run_id, tags = run.info.run_id, run.data.tags
    with checkpoint.as_directory() as directory:
        root = Path(directory)
        reference = weights_reference(root)  # the pruned folder's weights.json, read once
        if (root / ARTIFACTS).is_dir():
            with tempfile.TemporaryDirectory() as tmp:
                pictures = pictures_here(tracking_uri, root / ARTIFACTS, reference, Path(tmp))
                client.log_artifacts(run_id, str(pictures))
        if not (root / RESULT).is_file():
            return tags.get(MODEL_ID_TAG)
        client.log_artifact(run_id, str(root / RESULT))
        final = json.loads((root / RESULT).read_text())
        if "dataset" in final:
            client.log_inputs(run_id, datasets=[dataset_input(final["dataset"])])
        if MODEL_ID_TAG in tags or "input_shape" not in final:
            return tags.get(MODEL_ID_TAG)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = weights_here(tracking_uri, root / MODEL_DIR, reference, Path(tmp))
            if model_dir is None:
                return None
            config = json.loads((model_dir / CONFIG_FILE).read_text())
            model_id = log_trained_model(
                tracking_uri,
                run_id,
                model_dir,
                final["input_shape"],
                int(config["latent_dim"]),
                run=run,
            )
        client.set_tag(run_id, MODEL_ID_TAG, model_id)
    return model_id
