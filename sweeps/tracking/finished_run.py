"""A finished trial as its run is recorded (``sweeps.tracking.writer``): the pictures and weights
its pruned folder gave up, downloaded again from the MLflow store its ``weights.json`` names
(``--rebuild-mlflow``), and its folder pruned (``sweeps.store.finished``) once the run names
its model.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from analysis.redaction import redact
from analysis.trial_files import ARTIFACTS, CONFIG_FILE, WEIGHTS_FILE
from sweeps.store.finished import keep_only_final, sha256_of, weights_may_leave
from sweeps.tracking.runs import last_line

logger = logging.getLogger(__name__)
T = TypeVar("T")


def prune(
    client: Any, checkpoint: Any, model_id: str | None, run_artifacts: str, name: str
) -> None:
    """A finished trial's storage pruned (``sweeps.store.finished``): its weights referred to
    MLflow's model ``model_id`` (the one its run names, if any; ``run_artifacts``: the run's
    artifact URI). Before the run is marked FINISHED, so that a driver killed in between
    prunes again."""
    try:
        model = None
        if model_id:
            location = client.get_logged_model(model_id).artifact_location
            local = checkpoint.filesystem.type_name == "local"
            if weights_may_leave(local, location):
                model = {
                    "model_id": model_id,
                    "weights_uri": f"{location}/artifacts/{WEIGHTS_FILE}",
                    "run_artifacts": run_artifacts,
                }
        keep_only_final(checkpoint, model)
    except Exception as err:  # pruning only saves space: the trial keeps more than it needs
        logger.warning("could not prune the checkpoints of %s: %s", name, redact(str(err)))


def pictures_here(
    tracking_uri: str, pictures: Path, reference: dict[str, Any] | None, scratch: Path
) -> Path:
    """The trial's pictures: its folder's, plus (a finished trial whose other pictures MLflow
    held, ``--rebuild-mlflow``) those downloaded from the run its ``weights.json``
    (``reference``) names. Without them (the old artifact store gone) the folder's alone, with
    a warning."""
    reference = reference or {}
    if "run_artifacts" not in reference:
        return pictures
    here = scratch / ARTIFACTS
    shutil.copytree(pictures, here)

    def fetch(artifacts: Any) -> None:
        listed = artifacts.list_artifacts(
            artifact_uri=reference["run_artifacts"], tracking_uri=tracking_uri
        )
        for item in listed:
            name = item.path.rsplit("/", 1)[-1]
            if name.endswith(".png") and not (here / name).exists():
                artifacts.download_artifacts(
                    artifact_uri=f"{reference['run_artifacts']}/{name}",
                    dst_path=str(here),
                    tracking_uri=tracking_uri,
                )

    _from_old_store(
        reference,
        "the pictures of model %s's run are not where its trial's weights.json says (%s): the "
        "run gets the traversals only",
        fetch,
    )
    return here


def weights_here(
    tracking_uri: str, model_dir: Path, reference: dict[str, Any] | None, scratch: Path
) -> Path | None:
    """A folder with the trial's ``model.safetensors`` and ``config.json``: its own, or (a
    finished trial whose weights MLflow held, ``--rebuild-mlflow``) one with the weights
    downloaded from the model its ``weights.json`` (``reference``) names, checked against their
    sha256. None when neither is there (the run then has no model, said in a warning)."""
    if (model_dir / WEIGHTS_FILE).is_file():
        return model_dir
    if reference is None:
        return None
    shutil.copy(model_dir / CONFIG_FILE, scratch / CONFIG_FILE)

    def fetch(artifacts: Any) -> tuple[Path, str]:
        import pyarrow.fs

        got = Path(
            artifacts.download_artifacts(
                artifact_uri=reference["weights_uri"],
                dst_path=str(scratch / "download"),
                tracking_uri=tracking_uri,
            )
        )
        return got, sha256_of(pyarrow.fs.LocalFileSystem(), str(got.resolve()))[0]

    fetched = _from_old_store(
        reference,
        "the weights of model %s are not where its trial's weights.json says (%s): the run "
        "gets no model",
        fetch,
    )
    if fetched is None:
        return None
    got, digest = fetched
    if digest != reference["sha256"]:
        logger.warning("the weights at %s are not the trial's (sha256 differs): no model",
                       redact(reference["weights_uri"]))  # fmt: skip
        return None
    got.replace(scratch / WEIGHTS_FILE)
    return scratch


def _from_old_store(reference: dict[str, Any], failure: str, fetch: Callable[[Any], T]) -> T | None:
    """``fetch(mlflow.artifacts)``: a download from the MLflow store a trial's ``weights.json``
    (``reference``) names. If it fails: None, after the warning ``failure`` (formatted with
    the model's id and the error's one-line reason)."""
    import mlflow.artifacts

    try:
        return fetch(mlflow.artifacts)
    except Exception as err:
        logger.warning(failure, reference.get("model_id"), redact(last_line(str(err))))
        return None
