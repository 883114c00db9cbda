"""The files of a trial's checkpoint, written by ``sweeps.trial.trainable`` and read by the tracking
writer and ``analysis``: one layout, one reader. A leaf module (no torch, Ray or MLflow).

    CHECKPOINT/
      model/             model.safetensors, trainer_state.pt, config.json (betavae.checkpoint)
      history.jsonl      one curve row per report: {"step": …, "train/loss": …, …}
      result.json        the final checkpoint only: scores, timings, dataset, versions
      artifacts/         the final checkpoint only: pictures and trial_config.json
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

logger = logging.getLogger(__name__)


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
