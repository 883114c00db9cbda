"""Checkpoints that never run code when loaded.

A checkpoint is a directory: ``model.safetensors`` (weights), ``trainer_state.pt`` (step,
optimiser and RNG states; tensors and plain values only, read with ``weights_only=True``) and
``config.json``. Files are written to a temporary name and renamed, so a crash mid-save leaves
the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import safetensors.torch
import torch

from betavae.config import TrainConfig
from betavae.data import ImageDataset, load_dataset
from betavae.training import Trainer

WEIGHTS = "model.safetensors"
STATE = "trainer_state.pt"
CONFIG = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, incomplete or unsafe to load."""


def _replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def model_weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """The model's weights as contiguous CPU tensors (safetensors needs contiguous storage)."""
    return {k: v.detach().contiguous().cpu() for k, v in trainer.model.state_dict().items()}


def save_checkpoint(trainer: Trainer, directory: str | Path) -> Path:
    """Write weights, training state and config into ``directory`` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = model_weights(trainer)
    _replace_atomically(directory / WEIGHTS, lambda p: safetensors.torch.save_file(weights, str(p)))
    _replace_atomically(directory / STATE, lambda p: torch.save(trainer.training_state(), p))
    text = json.dumps(trainer.config.to_dict(), indent=2, sort_keys=True)
    _replace_atomically(directory / CONFIG, lambda p: p.write_text(text))
    return directory


def read_config(directory: str | Path) -> TrainConfig:
    path = Path(directory) / CONFIG
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError, TypeError) as err:
        raise CheckpointError(f"{path}: cannot read the checkpoint's config ({err})") from err


def load_checkpoint(
    directory: str | Path,
    dataset: ImageDataset | None = None,
    *,
    config: TrainConfig | None = None,
    device: torch.device | None = None,
) -> Trainer:
    """Rebuild a :class:`Trainer` exactly as it was saved, ready to continue training.

    ``config`` overrides the stored one (e.g. to train for more steps); it must describe the
    same model. The dataset is rebuilt from the config unless given.
    """
    directory = Path(directory)
    for name in (WEIGHTS, STATE, CONFIG):
        if not (directory / name).is_file():
            raise CheckpointError(f"{directory}: not a checkpoint (missing {name})")
    config = config or read_config(directory)
    trainer = Trainer(config, dataset or load_dataset(config.dataset), device)
    try:
        weights = safetensors.torch.load_file(str(directory / WEIGHTS))
    except Exception as err:  # safetensors' SafetensorError (truncated, empty file), OSError
        raise CheckpointError(
            f"{directory / WEIGHTS}: unreadable weights ({type(err).__name__}: {err})"
        ) from err
    try:
        state = torch.load(directory / STATE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{directory / STATE}: refused to load: it holds objects other than tensors and "
            f"plain values, which could run code ({err.__class__.__name__})"
        ) from err
    except (OSError, RuntimeError, ValueError, EOFError) as err:
        raise CheckpointError(
            f"{directory / STATE}: unreadable training state ({type(err).__name__}: {err})"
        ) from err
    try:
        trainer.model.load_state_dict(weights)
    except RuntimeError as err:
        raise CheckpointError(
            f"{directory}: weights do not fit the configured model ({err})"
        ) from err
    trainer.load_training_state(state)
    return trainer
