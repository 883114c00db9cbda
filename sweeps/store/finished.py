"""What a finished trial keeps on the sweep's storage: its final checkpoint, without the
optimiser state, and its weights once.

A trial checkpoints its whole training state (``model.safetensors`` + ``trainer_state.pt``, the
Adam moments twice the weights' size) every ``--checkpoint-every`` steps so that a killed or
lost trial resumes exactly. Once the trial has ended with its final result and MLflow holds
its model, none of that is needed again: the older checkpoints go, the final one loses
``trainer_state.pt``, and its ``model.safetensors`` is replaced by ``weights.json``, which names
the MLflow model holding the same bytes (its id, the weights' artifact URI and their sha256;
``--rebuild-mlflow`` downloads them from there). The curves, the result, the configs and the
traversals (which the report reads from here when MLflow cannot be read) stay; the other
pictures are MLflow's. A trial that ended in ERROR keeps everything until it is retried; a
trial whose model MLflow does not hold (an outage) keeps its weights and pictures.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from analysis.trial_files import ARTIFACTS, MODEL_DIR, RESULT, WEIGHTS_FILE

#: The reference that replaces a finished trial's ``model/model.safetensors``.
WEIGHTS_REFERENCE = "weights.json"
#: The pictures a finished trial's folder keeps once MLflow holds them all: the report's
#: fallback to Tune's folder (``analysis.runs.load_tune``) draws the traversals.
KEPT_PICTURES = ("traversals.png",)
TRAINING_STATE = "trainer_state.pt"  # betavae.checkpoint.STATE, named here without torch


def sha256_of(fs: Any, path: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def keep_only_final(checkpoint: Any, model: dict[str, str] | None) -> int:
    """Prune the trial folder of ``checkpoint`` (a ``tune.Checkpoint`` holding the final
    result) to what a finished trial keeps; ``model``: ``{"model_id", "weights_uri"}`` of the
    MLflow model holding its weights, or None (the weights stay). Idempotent (a driver killed
    halfway prunes again). Returns the checkpoint folders deleted."""
    import pyarrow.fs

    fs, final = checkpoint.filesystem, checkpoint.path.rstrip("/")
    model_dir = f"{final}/{MODEL_DIR}"

    def is_file(path: str) -> bool:
        return fs.get_file_info(path).type == pyarrow.fs.FileType.File

    weights, reference = f"{model_dir}/{WEIGHTS_FILE}", f"{model_dir}/{WEIGHTS_REFERENCE}"
    whole = is_file(f"{final}/{RESULT}") and is_file(f"{model_dir}/config.json")
    if not (whole and (is_file(weights) or is_file(reference))):
        return 0  # not a whole final checkpoint (or one cut short): nothing may go
    folder, _, name = final.rpartition("/")
    older = [
        f.path for f in fs.get_file_info(pyarrow.fs.FileSelector(folder))
        if f.type == pyarrow.fs.FileType.Directory
        and f.base_name.startswith("checkpoint_") and f.base_name != name
    ]  # fmt: skip
    for path in older:
        fs.delete_dir(path)
    state = f"{model_dir}/{TRAINING_STATE}"
    if fs.get_file_info(state).type == pyarrow.fs.FileType.File:
        fs.delete_file(state)
    if model:  # MLflow has the run's pictures too: keep the one the report reads from here
        pictures = fs.get_file_info(
            pyarrow.fs.FileSelector(f"{final}/{ARTIFACTS}", allow_not_found=True)
        )
        for picture in pictures:
            if picture.base_name.endswith(".png") and picture.base_name not in KEPT_PICTURES:
                fs.delete_file(picture.path)
    if model and is_file(weights):
        digest, size = sha256_of(fs, weights)
        if is_file(reference) and _read_reference(fs, reference).get("sha256") != digest:
            return len(older)  # trained again over a pruned folder: keep the new weights
        written = {**model, "file": WEIGHTS_FILE, "sha256": digest, "bytes": size}
        with fs.open_output_stream(f"{reference}.tmp") as out:  # whole or not at all
            out.write(json.dumps(written, indent=2).encode())
        fs.move(f"{reference}.tmp", reference)
        fs.delete_file(weights)
    return len(older)


def _read_reference(fs: Any, path: str) -> dict[str, Any]:
    try:
        with fs.open_input_stream(path) as stream:
            found = json.loads(stream.read())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def weights_may_leave(storage_is_local: bool, artifact_location: str) -> bool:
    """Whether a finished trial's weights may live in MLflow's model only: when the sweep's
    storage is this machine's disk too, or MLflow's artifacts are on a remote store. A sweep on
    S3 whose MLflow artifacts are on the head's disk (``file:``) keeps its weights on S3: a new
    head would find the database (backed up) but not those artifacts."""
    from urllib.parse import urlsplit

    return storage_is_local or urlsplit(artifact_location).scheme not in ("", "file")


def weights_reference(directory: Any) -> dict[str, Any] | None:
    """The ``weights.json`` of a local checkpoint copy's ``model/`` folder, if there is one."""
    from pathlib import Path

    path = Path(directory) / MODEL_DIR / WEIGHTS_REFERENCE
    try:
        found = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):  # torn: as if there were none
        return None
    return found if isinstance(found, dict) else None
