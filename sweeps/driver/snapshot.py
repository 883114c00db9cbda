"""Tune's experiment snapshot, read before a resume: a trial it names at a deleted checkpoint
still resumes, from its newest checkpoint that loads.

Tune rewrites the snapshot every ``max(10 s, 19 × the time a write takes)`` (its "auto" period:
at most ~5% of the driver's time, however many trials it holds) and deletes a trial's oldest
checkpoint as each new one past ``num_to_keep`` registers. A driver killed between the two
leaves a snapshot naming a checkpoint that is gone, and Tune's worker then refuses to restore
that trial ("Could not recover from checkpoint as it does not exist on storage anymore"). A
snapshot every second made the window small but cost ever more as trials accumulate (every
trial's state, finished ones too, rewritten each time). Instead, before a resume, each trial the
snapshot does not show finished and names at a missing checkpoint gets that folder back,
empty: Tune's existence check passes, and the trial's own restore
(``sweeps.trial.trainable._restore``) skips a checkpoint that does not load and takes the
newest one that does (by training step).

Imports Ray (a private class of Tune's, pinned by ``constraints.txt``).
"""

from __future__ import annotations

import json
import logging
from pathlib import PurePosixPath

logger = logging.getLogger(__name__)

#: Tune's snapshot file, one per driver session; the newest is the one restored.
SNAPSHOT_GLOB = "experiment_state-*.json"


def named_checkpoints(snapshot: dict) -> dict[str, list[str]]:
    """``{trial folder name: [checkpoint folder names]}`` for each unfinished trial of a
    snapshot (a parsed ``experiment_state-*.json``): the checkpoints Tune tracks for it, the
    one it restores from last. Tune deletes the oldest tracked one as a new one registers, and
    fails that step if it is gone, so every one must be there, not only the newest."""
    from ray.tune.trainable.metadata import _TrainingRunMetadata

    named = {}
    for trial_json, metadata_json in snapshot.get("trial_data", []):
        if json.loads(trial_json).get("status") == "TERMINATED":
            continue
        manager = _TrainingRunMetadata.from_json_state(metadata_json).checkpoint_manager
        tracked = list(getattr(manager, "_checkpoint_results", None) or [])
        latest = manager.latest_checkpoint_result if manager else None
        paths = [PurePosixPath(r.checkpoint.path) for r in [*tracked, latest] if r is not None]
        names = list(dict.fromkeys(p.name for p in paths))  # in order, once each
        if paths:
            named[paths[-1].parent.name] = names
    return named


def restore_named_checkpoints(fs, experiment: str) -> list[str]:
    """Recreate (empty) each missing checkpoint folder the newest snapshot in ``experiment``
    (a folder in the pyarrow filesystem ``fs``) names; returns them, ``trial/checkpoint``."""
    import pyarrow.fs

    found = fs.get_file_info(pyarrow.fs.FileSelector(experiment))
    snapshots = sorted(
        f.path for f in found if PurePosixPath(f.path).match(SNAPSHOT_GLOB) and f.is_file
    )
    if not snapshots:
        return []
    with fs.open_input_stream(snapshots[-1]) as stream:
        snapshot = json.loads(stream.read())
    restored = []
    for trial, checkpoints in sorted(named_checkpoints(snapshot).items()):
        for checkpoint in checkpoints:
            path = f"{experiment}/{trial}/{checkpoint}"
            if fs.get_file_info(path).type == pyarrow.fs.FileType.NotFound:
                fs.create_dir(path)
                restored.append(f"{trial}/{checkpoint}")
    if restored:
        logger.warning(
            "Tune's snapshot named %d deleted checkpoint(s) (%s); those trials resume from "
            "their newest checkpoint that loads",
            len(restored),
            ", ".join(restored),
        )
    return restored
