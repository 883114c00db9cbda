"""The files of a trial's checkpoint, written by ``sweeps.trial.trainable`` and read by the tracking
writer and ``analysis``: one layout, one reader. A leaf module (no torch, Ray or MLflow).

    CHECKPOINT/
      model/             model.safetensors, trainer_state.pt, config.json (betavae.checkpoint)
      history.jsonl      one curve row per report: {"step": …, "train/loss": …, …}
      result.json        the final checkpoint only: scores, timings, dataset, versions
      artifacts/         the final checkpoint only: pictures and trial_config.json

and, beside the trials, when the sweep scores UDR (one file per finished trial):

    STORAGE/NAME/udr_codes/TRIAL_ID.npz   codes [1000, d] of the sweep's UDR inputs, kl [d]
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

MODEL_DIR = "model"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HISTORY = "history.jsonl"
RESULT = "result.json"
ARTIFACTS = "artifacts"
TRIAL_CONFIG = "trial_config.json"
UDR_CODES_DIR = "udr_codes"
UDR_CODES_SUFFIX = ".npz"

logger = logging.getLogger(__name__)


def folder_trial_id(name: str) -> str:
    """The Tune trial id a trial folder's name ends with (``C25-g100-z10-s0-<id>``: see
    ``sweeps.trial.config.TrialConfig.dirname``)."""
    return name.rsplit("-", 1)[-1]


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The curve rows of a ``history.jsonl``; a line that is not JSON (a write torn by a
    crash) is skipped with a warning naming the file and line. A missing file has no rows."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s: line %d is not a JSON row (a torn write?); skipped", path, number)
    return rows


#: A Tune result carries the per-latent KL as one list under this key (one snapshot entry per
#: trial, not one per latent: Tune keeps running statistics of every numeric key of every
#: trial in its experiment state); curve rows and MLflow use one key per latent.
KL_LIST = "train/kl_per_dim"


def compact_curve(row: dict[str, Any]) -> dict[str, Any]:
    """A curve row with ``train/kl_per_dim/NN`` keys → the same row with one ``KL_LIST``."""
    prefix = KL_LIST + "/"
    # By latent number: past 99 latents the names (``/100``) no longer sort as text.
    dims = sorted((k for k in row if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :]))
    out = {k: v for k, v in row.items() if not k.startswith(prefix)}
    if dims:
        out[KL_LIST] = [row[k] for k in dims]
    return out


def expand_curve(row: dict[str, Any]) -> dict[str, Any]:
    """The inverse of ``compact_curve`` (a row without the list is returned as it is)."""
    values = row.get(KL_LIST)
    if not isinstance(values, list):
        return row
    out = {k: v for k, v in row.items() if k != KL_LIST}
    out.update({f"{KL_LIST}/{i:02d}": float(v) for i, v in enumerate(values)})
    return out


def read_udr_codes(data: bytes) -> tuple[Any, Any]:
    """``(codes, kl)`` of a trial's ``udr_codes/TRIAL_ID.npz`` (its bytes); never unpickles."""
    import io

    import numpy as np

    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        return stored["codes"], stored["kl"]
