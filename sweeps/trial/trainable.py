"""One sweep trial: train a β-VAE with ``betavae``, report curves, checkpoint, score it.

Runs inside a Ray Tune worker. Intermediate results (every ``report_every`` steps) carry the
training curves under ``train/…``; every ``checkpoint_every`` steps a Tune checkpoint holds
the exact training state, so a restored trial continues at its step (the capacity C included).
The final result holds the held-out ELBO terms, every ``metric.*`` score and ``feasible``; the
final checkpoint also holds the pictures, the weights (safetensors) and the trial config.
A diverged trial (non-finite loss) ends at once with an ``error`` result instead of being
retried: rerunning it from its checkpoint would diverge again.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from analysis.trial_files import (
    ARTIFACTS,
    HISTORY,
    MODEL_DIR,
    RESULT,
    TRIAL_CONFIG,
    UDR_CODES_DIR,
    UDR_CODES_SUFFIX,
    compact_curve,
    read_history,
)
from betavae.catalogue import SETTING_METRICS
from betavae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from betavae.config import TrainConfig
from betavae.data import load_dataset
from betavae.metrics import METRICS, evaluate, udr_inputs
from betavae.training import Trainer
from betavae.versions import library_versions
from sweeps.store.uri import write_whole
from sweeps.trial import pictures
from sweeps.trial.announce import announce_worker
from sweeps.trial.config import TrialConfig


def curve_row(metrics: dict[str, Any], objective: str) -> dict[str, Any]:
    """``Trainer.fit`` log metrics → the flat intermediate result (``train/…`` keys).

    ``train/capacity`` only for the capacity objective: the β objective has no C.
    """
    row: dict[str, Any] = {"step": metrics["step"]}
    keys = ("loss", "recon_nll", "kl", "images_per_s")
    if objective == "capacity":
        keys = (*keys, "capacity")
    for key in keys:
        row[f"train/{key}"] = float(metrics[key])
    for i, value in enumerate(metrics["kl_per_dim"]):
        row[f"train/kl_per_dim/{i:02d}"] = float(value)
    return row


def kl_history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Curve rows → ``{"step", "kl_per_dim", "capacity"}`` for ``pictures.kl_curves``."""
    out = []
    for row in rows:
        dims = sorted(k for k in row if k.startswith("train/kl_per_dim/"))
        out.append(
            {
                "step": row["step"],
                "kl_per_dim": [row[k] for k in dims],
                "capacity": row.get("train/capacity"),
            }
        )
    return out


@functools.lru_cache(maxsize=2)
def dataset_of(spec: str):
    """The dataset a spec names, built once per worker: Tune reuses a worker's actor for the
    sweep's next trial (``reuse_actors``), which then skips building it again."""
    return load_dataset(spec)


def _restore(config: TrainConfig) -> tuple[Trainer, list[dict[str, Any]]]:
    """The trainer and curve rows to continue from: the newest checkpoint that loads.

    A newest checkpoint that does not load (a truncated ``model.safetensors``, an empty
    ``trainer_state.pt``: a disk that filled, a copy cut short) is skipped with a warning
    naming the file, and the one before it is used; with none left the trial starts over.
    """
    dataset = dataset_of(config.dataset)
    checkpoint = tune.get_checkpoint()
    for candidate in _newest_first(checkpoint):
        try:
            with candidate.as_directory() as directory:
                trainer = load_checkpoint(Path(directory) / MODEL_DIR, dataset, config=config)
                rows = read_history(Path(directory) / HISTORY)
        except CheckpointError as err:
            warnings.warn(f"skipping checkpoint {candidate.path}: {err}", stacklevel=1)
            continue
        return trainer, [row for row in rows if row["step"] <= trainer.step]
    if checkpoint is not None:
        warnings.warn(f"no checkpoint before {checkpoint.path} loads: from step 0", stacklevel=1)
    return Trainer(config, dataset), []


def _newest_first(checkpoint: tune.Checkpoint | None) -> list[tune.Checkpoint]:
    """Every ``checkpoint_NNNNNN`` of the trial ``checkpoint`` is one of, newest training
    step first (the step its ``history.jsonl`` ends at; a final checkpoint, then the folder's
    number, breaks ties).

    Not only ``checkpoint`` and the ones before it: after a killed driver, Tune's snapshot
    may name an older checkpoint than the trial reached, or a deleted one (recreated empty by
    ``sweeps.driver.snapshot``), and a resumed trial writes its numbers again over folders
    of the run before.
    """
    if checkpoint is None:
        return []
    folder = checkpoint.path.rstrip("/").rpartition("/")[0]
    return _checkpoints_in(checkpoint.filesystem, folder) or [checkpoint]


def _checkpoints_in(fs: Any, folder: str) -> list[tune.Checkpoint]:
    """The checkpoints in a trial's folder on ``fs``, newest first (see ``_newest_first``)."""
    import pyarrow.fs

    found = fs.get_file_info(pyarrow.fs.FileSelector(folder, allow_not_found=True))
    paths = [
        f.path for f in found
        if f.type == pyarrow.fs.FileType.Directory and f.base_name.startswith("checkpoint_")
    ]  # fmt: skip

    def last_step(path: str) -> int:
        try:
            with fs.open_input_stream(f"{path}/{HISTORY}") as stream:
                lines = stream.read().decode(errors="replace").splitlines()
        except OSError:  # no history: an empty folder Tune's snapshot named
            return -1
        for line in reversed(lines):
            try:
                return int(json.loads(line)["step"])
            except (ValueError, KeyError, TypeError):  # a torn last line
                continue
        return -1

    def is_final(path: str) -> bool:
        return fs.get_file_info(f"{path}/{RESULT}").type == pyarrow.fs.FileType.File

    paths.sort(key=lambda p: (last_step(p), is_final(p), p.rpartition("/")[2]), reverse=True)
    return [tune.Checkpoint(p, filesystem=fs) for p in paths]


def _stored_checkpoints() -> list[tune.Checkpoint]:
    """The checkpoints in this trial's folder on the sweep's storage, newest first: for a
    trial Tune restores without a checkpoint (its snapshot predates the first one)."""
    try:
        storage = tune.get_context().get_storage()
        return _checkpoints_in(storage.storage_filesystem, storage.trial_fs_path)
    except Exception:  # no storage context (outside Tune): nothing stored
        return []


def _finished_result(fs: Any, path: str) -> dict[str, Any] | None:
    """The final result a checkpoint folder holds, if it is a whole final checkpoint: a
    ``result.json`` that parses with ``final``, the model's config, and its weights or the
    reference to them (a final checkpoint cut short is not one)."""
    import pyarrow.fs

    from sweeps.store.finished import WEIGHTS_REFERENCE

    def exists(name: str) -> bool:
        return fs.get_file_info(f"{path}/{name}").type == pyarrow.fs.FileType.File

    weights = exists(f"{MODEL_DIR}/model.safetensors") or exists(f"{MODEL_DIR}/{WEIGHTS_REFERENCE}")
    if not (exists(RESULT) and exists(f"{MODEL_DIR}/config.json") and weights):
        return None
    try:
        with fs.open_input_stream(f"{path}/{RESULT}") as stream:
            saved = json.loads(stream.read())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or not saved.get("final"):
        return None
    return {k: v for k, v in saved.items() if not isinstance(v, list | dict)}


def _report_finished_again(checkpoint: tune.Checkpoint | None) -> bool:
    """A trial restored from a snapshot taken before it finished, whose whole final
    checkpoint is on storage (the driver was killed after it; a finished trial keeps only
    that one, ``sweeps.store.finished``): its final result is reported again, with a copy of
    that checkpoint, instead of training it again. Returns whether it was.

    The copy is made through a local folder: Tune copies a reported checkpoint to the next
    number, which may be the very folder it came from (S3 refuses to copy an object onto
    itself)."""
    candidates = _newest_first(checkpoint) if checkpoint is not None else _stored_checkpoints()
    if not candidates:
        return False
    newest = candidates[0]
    result = _finished_result(newest.filesystem, newest.path)
    if result is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(newest.to_directory(tmp)))
    return True


def _write_state(trainer: Trainer, history: list[dict[str, Any]], directory: Path) -> None:
    save_checkpoint(trainer, directory / MODEL_DIR)
    (directory / HISTORY).write_text("".join(json.dumps(row) + "\n" for row in history))


def train_trial(config: dict[str, Any]) -> None:
    """The Tune function trainable."""
    # One line per checkpoint from Ray's storage module drowns the progress table.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    # First thing, so that a hang in what follows (restore, data, GPU) can be killed.
    announce_worker()
    trial = TrialConfig.from_tune(config)
    if _report_finished_again(tune.get_checkpoint()):
        return
    torch.set_num_threads(max(1, int(trial.cpus_per_trial)))
    train_config = trial.train_config()
    trainer, history = _restore(train_config)
    report_every, checkpoint_every = trial.report_every, trial.checkpoint_every
    # With Tune's own "pid", where a hung worker is (sweeps.driver.stall kills it there).
    where = {"worker_node": ray.get_runtime_context().get_node_id()}
    steps = train_config.steps
    while trainer.step < steps:
        until = min(steps, (trainer.step // report_every + 1) * report_every)
        try:
            metrics = trainer.fit(until, log_every=report_every)
        except FloatingPointError as err:
            tune.report({"step": trainer.step, "error": f"diverged: {err}"})
            return
        row = curve_row(metrics, train_config.objective)
        history.append(row)
        if trainer.step % checkpoint_every == 0 or trainer.step == steps:
            with tempfile.TemporaryDirectory() as tmp:
                _write_state(trainer, history, Path(tmp))
                tune.report(
                    {**compact_curve(row), **where},
                    checkpoint=tune.Checkpoint.from_directory(tmp),
                )
        else:
            tune.report({**compact_curve(row), **where})
    _final(trainer, history, trial)


def score(trainer: Trainer, trial: TrialConfig) -> tuple[dict[str, Any], Any, Any]:
    """A trained model's final numbers: the held-out ELBO terms, every metric, feasibility.

    Returns ``(result, elbo, evaluation)``: the flat final result, ``Trainer.evaluate``'s
    metrics and ``betavae.metrics.evaluate``'s ``Evaluation``. ``bench/landscape.py`` scores
    its models with this too, so the recorded landscape is what a sweep would record.
    """
    elbo = trainer.evaluate(num_images=trial.eval_images, seed=0)
    evaluation = evaluate(
        trainer.dataset,
        trainer.encode,
        metrics=[m for m in trial.metrics if m in METRICS],  # UDR: across seeds, by the sweep
        mode=trial.metric_mode,
        seed=0,
        kl_per_dim=elbo["kl_per_dim"],
    )
    result: dict[str, Any] = {
        "step": trainer.step,
        "recon_nll": float(elbo["recon_nll"]),
        **evaluation.scores,
        "feasible": float(trial.feasible(float(elbo["recon_nll"]))),
    }
    return result, elbo, evaluation


def save_udr_codes(trainer: Trainer, kl_per_dim: list[float]) -> None:
    """The trial's codes of the sweep's UDR inputs (``betavae.metrics.udr_inputs``: the same
    images for every trial) and its per-latent KL, as ``STORAGE/NAME/udr_codes/TRIAL_ID.npz``,
    where the sweep's searcher scores the setting's seeds against each other."""
    import io

    import numpy as np

    codes = trainer.encode(udr_inputs(trainer.dataset))
    buffer = io.BytesIO()
    np.savez(buffer, codes=codes.astype(np.float32), kl=np.asarray(kl_per_dim, np.float64))
    context = tune.get_context()
    storage = context.get_storage()
    folder = f"{storage.experiment_fs_path}/{UDR_CODES_DIR}"
    storage.storage_filesystem.create_dir(folder, recursive=True)
    write_whole(
        storage.storage_filesystem,
        f"{folder}/{context.get_trial_id()}{UDR_CODES_SUFFIX}",
        buffer.getvalue(),
    )


def _factors(dataset: Any) -> dict[str, int]:
    """The dataset's factors and their sizes ({} for the user's own images)."""
    if not dataset.has_factors:
        return {}
    return dict(zip(dataset.factor_names, dataset.factor_sizes, strict=True))


def _final(trainer: Trainer, history: list[dict[str, Any]], trial: TrialConfig) -> None:
    start = time.perf_counter()
    result, elbo, evaluation = score(trainer, trial)
    if any(m in SETTING_METRICS for m in trial.metrics):
        save_udr_codes(trainer, elbo["kl_per_dim"])
    result.update(final=1.0, node_id=ray.get_runtime_context().get_node_id())
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        _write_state(trainer, history, directory)
        drawn = directory / ARTIFACTS
        drawn.mkdir()
        pictures.latent_traversals(trainer, drawn / "traversals.png", elbo["kl_per_dim"])
        pictures.reconstructions(trainer, drawn / "reconstructions.png")
        if history:
            pictures.kl_curves(
                kl_history(history), drawn / "kl_per_latent.png", title=trial.label()
            )
        (drawn / TRIAL_CONFIG).write_text(
            json.dumps(
                {"trial": trial.as_dict(), "train_config": trainer.config.to_dict()}, indent=2
            )
        )
        result["eval_seconds"] = time.perf_counter() - start
        (directory / RESULT).write_text(
            json.dumps(
                {
                    **result,
                    "kl_per_dim": elbo["kl_per_dim"],
                    "metric_seconds": evaluation.seconds,
                    "metric_settings": evaluation.settings,
                    "versions": library_versions(),
                    "input_shape": list(trainer.dataset.observation_shape),
                    "dataset": {
                        "spec": trial.dataset,
                        "name": trainer.dataset.name,
                        "digest": trainer.dataset.content_digest(),
                        "images": len(trainer.dataset),
                        "factors": _factors(trainer.dataset),
                    },
                },
                indent=2,
            )
        )
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))
