"""Tune's experiment snapshot, read before a resume: a trial it names at a deleted checkpoint
still resumes, from its newest checkpoint that loads, and trials it lacks are not counted.

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

Tune writes the snapshot, then its search generator's state (how many trials it has made, and
the trials its concurrency limit holds as running). A driver killed between the two leaves a
generator that counted trials the snapshot lacks (lost: ``sweeps.driver.lost``): the resumed
sweep would end short of ``--num-samples`` and keep a slot for each lost trial for ever.
``align_search_state`` brings the generator's state back to the snapshot's trials before a
resume.

Each driver session writes its own snapshot files (``experiment_state-<session>.json`` and the
searcher's, the search generator's and the callbacks' beside it); Tune restores the newest of
each and never deletes the others, so every resume of a 10,000-trial sweep left ~290 MB more.
``prune_old_snapshots`` keeps the newest of each at a driver's end.

``Tuner.restore`` and, at a fit's end, the ``ResultGrid`` read every trial's ``result.json`` into
a DataFrame (10,000 files; on S3 10,000 requests) for ``Result.metrics_dataframe``, which the
sweep never reads: ``results_without_dataframes`` skips that read.

Imports Ray (private parts of Tune's, pinned by ``constraints.txt``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import PurePosixPath

logger = logging.getLogger(__name__)

#: Tune's snapshot file, one per driver session; the newest is the one restored.
SNAPSHOT_GLOB = "experiment_state-*.json"
#: The search generator's state file (Tune's template): its trial count, and the trials its
#: concurrency limit holds as running.
SEARCH_GEN_STATE = "search_gen_state-{}.json"
#: Every file a driver session writes beside it (Tune's templates, ``{}``: the session).
SESSION_FILES = (
    "experiment_state-{}.json",
    "searcher-state-{}.pkl",
    SEARCH_GEN_STATE,
    "callback-states-{}.pkl",
    "basic-variant-state-{}.json",
)


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


def newest_snapshot(fs, experiment: str) -> dict | None:
    """The newest Tune snapshot in ``experiment`` (a folder in the pyarrow filesystem ``fs``),
    parsed; None when there is none."""
    newest = newest_session_file(fs, experiment, SNAPSHOT_GLOB)
    if newest is None:
        return None
    with fs.open_input_stream(newest) as stream:
        return json.loads(stream.read())


def newest_session_file(fs, experiment: str, pattern: str) -> str | None:
    """The path of the newest file in ``experiment`` (a folder in the pyarrow filesystem
    ``fs``) whose name matches ``pattern`` (a session file's glob, e.g. ``SNAPSHOT_GLOB``): the
    one Tune restores (session names sort by time); None when there is none."""
    import pyarrow.fs

    found = fs.get_file_info(pyarrow.fs.FileSelector(experiment))
    matching = sorted(f.path for f in found if f.is_file and PurePosixPath(f.path).match(pattern))
    return matching[-1] if matching else None


def snapshot_trial_ids(snapshot: dict) -> set[str]:
    """The ids of the trials a snapshot holds: the ones a resumed Tune knows. A trial started
    after the snapshot its killed driver last wrote is not among them, and never resumes."""
    return {json.loads(trial_json)["trial_id"] for trial_json, _ in snapshot.get("trial_data", [])}


def restore_named_checkpoints(fs, experiment: str, snapshot: dict | None = None) -> list[str]:
    """Recreate (empty) each missing checkpoint folder the newest snapshot in ``experiment``
    (a folder in the pyarrow filesystem ``fs``; ``snapshot``, when already read) names;
    returns them, ``trial/checkpoint``."""
    import pyarrow.fs

    snapshot = snapshot if snapshot is not None else newest_snapshot(fs, experiment)
    if snapshot is None:
        return []
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


def align_search_state(fs, experiment: str, snapshot: dict) -> list[str]:
    """Make the newest search-generator state in ``experiment`` (a folder in the pyarrow
    filesystem ``fs``) agree with ``snapshot``, the experiment snapshot Tune restores; returns
    what changed, one phrase each (none: nothing to do).

    Tune writes the snapshot first and the generator's state after it, then copies each file to
    the storage: a driver killed between the two leaves a generator that has counted trials the
    snapshot does not hold. The restored Tune would then stop short of ``--num-samples`` (the
    trials counted but lost are never started again) and its concurrency limit would keep a
    slot for each lost trial for ever (all of them taken: a sweep that never ends). The trials
    the snapshot does not hold are the lost ones (``sweeps.driver.lost``): the count comes down
    to the trials held, and the limit lets the lost ones go."""
    import ray.cloudpickle as cloudpickle

    newest = newest_session_file(fs, experiment, SEARCH_GEN_STATE.format("*"))
    if newest is None:
        return []
    with fs.open_input_stream(newest) as stream:
        state = cloudpickle.loads(stream.read())
    held = snapshot_trial_ids(snapshot)
    changed = []
    if state.get("counter", 0) > len(held):
        changed.append(f"its trial count {state['counter']} → {len(held)}")
        state["counter"], state["finished"] = len(held), False
    for name, wrapper in state.items():
        live = wrapper.get("live_trials") if isinstance(wrapper, dict) else None
        if not live or live <= held:
            continue
        gone = live - held
        changed.append(f"{name.removeprefix('name:')} lets go of {', '.join(sorted(gone))}")
        wrapper["live_trials"] = live & held
        wrapper["num_unfinished_live_trials"] = max(
            0, wrapper.get("num_unfinished_live_trials", 0) - len(gone)
        )
    if not changed:
        return []
    staged = f"{experiment}/.aligned-{PurePosixPath(newest).name}"  # outside Tune's glob
    with fs.open_output_stream(staged) as out:  # until it is whole
        out.write(cloudpickle.dumps(state))
    fs.move(staged, newest)
    logger.warning(
        "Tune's search generator had counted trials its snapshot does not hold (a driver killed "
        "between writing the two): %s",
        "; ".join(changed),
    )
    return changed


def prune_old_snapshots(fs, experiment: str) -> list[str]:
    """Delete every session's snapshot file but the newest of each kind (the one Tune restores)
    in ``experiment`` (a folder in the pyarrow filesystem ``fs``); returns the names deleted."""
    import pyarrow.fs

    names = [
        PurePosixPath(f.path).name
        for f in fs.get_file_info(pyarrow.fs.FileSelector(experiment))
        if f.is_file
    ]
    deleted = []
    for template in SESSION_FILES:
        prefix, suffix = template.split("{}")
        kind = sorted(n for n in names if n.startswith(prefix) and n.endswith(suffix))
        for name in kind[:-1]:
            fs.delete_file(f"{experiment}/{name}")
            deleted.append(name)
    return deleted


@contextlib.contextmanager
def results_without_dataframes() -> Iterator[None]:
    """Within: Tune's ``ExperimentAnalysis`` (hence ``Tuner.fit``'s ``ResultGrid``) gives each
    trial an empty ``metrics_dataframe`` instead of reading its ``result.json``; a trial's last
    result (``Result.metrics``), config, checkpoint, path and error are as before."""
    from pandas import DataFrame
    from ray.tune.analysis.experiment_analysis import ExperimentAnalysis

    original = ExperimentAnalysis.__dict__.get("_fetch_trial_dataframes")
    if original is None:  # another Tune (tests/e2e/test_sweep_smoke.py says so): its own way
        yield
        return

    def empty(self) -> dict:
        return {trial.trial_id: DataFrame() for trial in self.trials}

    ExperimentAnalysis._fetch_trial_dataframes = empty
    try:
        yield
    finally:
        ExperimentAnalysis._fetch_trial_dataframes = original
