"""The MLflow side of a sweep, as plain functions: find or create the experiment and runs
(idempotently, by tag), the runs' source tags, a trained model, a dataset input.

Runs are found before they are created: the parent by ``betavae.sweep_dir`` (the sweep's
storage folder), a child by ``betavae.trial_id`` under its parent, so a resumed sweep writes
into the same runs and never duplicates one.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, Run
from mlflow.tracking import MlflowClient

from analysis.schema import (
    INTERRUPTED_TAG,
    PARENT_TAG,
    ROLE_TAG,
    SWEEP_DIR_TAG,
    TRIAL_ID_TAG,
    UDR_SEEDS_KEY,
)
from analysis.trial_files import CONFIG_FILE, WEIGHTS_FILE
from sweeps.trial.config import TrialConfig

#: The module name ``betavae/models.py`` has inside a logged model (``sweeps/tracking/model.py``).
SHIPPED_MODELS_MODULE = "betavae_models"


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


def find_runs(client: MlflowClient, experiment: str, **tags: str) -> list:
    clauses = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    return client.search_runs(
        [experiment], filter_string=clauses, max_results=10, order_by=["attributes.start_time ASC"]
    )


def log_seed_scores(
    client: MlflowClient,
    experiment: str,
    parent_run_id: str,
    trial_id: str,
    scores: dict[str, float],
    run_id: str | None = None,
) -> bool:
    """Scores computed across a setting's seeds (``metric.udr``) into the trial's run (found
    by tag unless ``run_id`` is given), at the step of the number of seeds behind them
    (``UDR_SEEDS_KEY``). False when the trial has no run."""
    import time

    if run_id is None:
        found = find_runs(client, experiment, **{TRIAL_ID_TAG: trial_id, PARENT_TAG: parent_run_id})
        if not found:
            return False
        run_id = found[0].info.run_id
    step, now = int(scores.get(UDR_SEEDS_KEY, 0)), int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in scores.items()])
    return True


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
    found = find_runs(client, experiment, **{SWEEP_DIR_TAG: sweep_dir, ROLE_TAG: "sweep"})
    if found:
        run_id = found[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        if INTERRUPTED_TAG in found[0].data.tags:  # a signal stopped it; it runs again now
            client.delete_tag(run_id, INTERRUPTED_TAG)
        return run_id
    run = client.create_run(
        experiment, run_name=run_name, tags={**tags, SWEEP_DIR_TAG: sweep_dir, ROLE_TAG: "sweep"}
    )
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def trial_params(config: dict[str, Any]) -> dict[str, str]:
    """A trial's MLflow params (see ``TrialConfig.mlflow_params``)."""
    return TrialConfig.from_tune(config).mlflow_params()


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
    tracking_uri: str,
    run_id: str,
    model_dir: Path,
    input_shape: list[int],
    latent_dim: int,
    run: Run | None = None,
) -> str:
    """Log a trial's weights as an MLflow model of the run (``sweeps/tracking/model.py``).

    The model is defined in code; its artifacts are ``model.safetensors`` and ``config.json``,
    and it carries the code it runs (``betavae/models.py`` as the module
    ``betavae_models``, in ``code_paths``: 8 kB, not the whole package's 220 kB per trial), so
    loading it needs no install. Its signature: float32 images ``[-1, *input_shape]`` →
    float32 codes ``[-1, latent_dim]``; no input example (a blank image, 88 kB of JSON per
    trial, whose check at logging time loaded and ran every model in the driver). Returns the
    model's id.

    The model is created first (``mlflow.initialize_logged_model``: the run as its source, the
    run's params as its own), then logged outside the run, then named among the run's outputs.
    Logged inside the run (``start_run``), MLflow would also read the history of every metric
    the run has, to link the ones at the model's step: ~25 queries per trial that scan the
    whole metrics table of a sqlite store (slower with every trial), for no metric linked (the
    trials' curves and scores are at other steps). ``run``: the run, if already read.
    """
    from importlib.metadata import version

    import mlflow
    import numpy as np
    from mlflow.entities import LoggedModelOutput
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
    client = MlflowClient(tracking_uri)
    run = run or client.get_run(run_id)
    quiet = logging.getLogger("mlflow.pyfunc")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "Validating input example …" for every trial
    # MLflow's log_model puts its own "once" filter first, so warnings are recorded here and
    # passed on, except its advice to type-hint predict and to give an input example: the
    # signature below is the schema.
    with (
        warnings.catch_warnings(record=True) as caught,
        contextlib.ExitStack() as restore,
        tempfile.TemporaryDirectory() as code,
    ):
        restore.callback(quiet.setLevel, level)
        warnings.simplefilter("always")  # recorded, then passed on below (or dropped)
        # The model's code as one top-level module (it imports torch only): a stub package
        # named betavae on the loader's sys.path would hide an installed betavae's others.
        shipped = Path(code, f"{SHIPPED_MODELS_MODULE}.py")
        shutil.copy(Path(betavae.__file__).with_name("models.py"), shipped)
        model = mlflow.initialize_logged_model(
            name="model",
            source_run_id=run_id,
            params=dict(run.data.params),
            experiment_id=run.info.experiment_id,
        )
        info = mlflow.pyfunc.log_model(
            name="model",
            model_id=model.model_id,
            python_model=str(Path(__file__).with_name("model.py")),
            artifacts={
                "weights": str(model_dir / WEIGHTS_FILE),
                "config": str(model_dir / CONFIG_FILE),
            },
            code_paths=[str(shipped)],
            model_config={"channels": int(input_shape[0])},
            signature=signature,
            pip_requirements=requirements,
        )
    client.log_outputs(run_id, [LoggedModelOutput(info.model_id, step=0)])
    for warning in caught:
        if not any(part in str(warning.message) for part in ("type hint", "input example")):
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    return info.model_id


def last_line(text: str) -> str:
    """The exception line of a traceback (what a user wants in a tag)."""
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith(" "):
            return line.strip()
    return lines[-1].strip() if lines else "trial failed"
