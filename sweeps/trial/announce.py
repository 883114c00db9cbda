"""Where a trial's worker runs, told to the driver the moment the trial's code starts.

The driver's hung-trial watch (``sweeps.driver.stall``) must be able to kill a worker that
hangs before it ever reports: while restoring a checkpoint, loading the dataset or
initialising a GPU. Tune names the worker's pid only in a result, so the trial announces its
node and pid first thing to a small actor the watch owns, ``WorkerRegistry`` (no CPU, one per
sweep driver: a named actor in the driver's job namespace, so two sweeps on one cluster keep
their own). Outside such a sweep (no registry) the announcement is skipped.
"""

from __future__ import annotations

import os

import ray

REGISTRY_NAME = "betavae-stall-watch-workers"


@ray.remote(num_cpus=0, max_restarts=0)
class WorkerRegistry:
    """Announcements queued for the watch: ``(trial_id, node_id, pid)`` in arrival order."""

    def __init__(self) -> None:
        self._new: list[tuple[str, str, int]] = []

    def hello(self, trial_id: str, node_id: str, pid: int) -> None:
        self._new.append((trial_id, node_id, pid))

    def take(self) -> list[tuple[str, str, int]]:
        new, self._new = self._new, []
        return new


def announce_worker(trial_id: str | None = None) -> bool:
    """Tell the sweep's watch this process runs ``trial_id`` (default: Tune's current trial);
    False when no watch listens. Not waited for: a slow driver never delays the trial."""
    try:
        registry = ray.get_actor(REGISTRY_NAME)
    except ValueError:  # not started by a sweep driver with a watch
        return False
    if trial_id is None:
        from ray import tune

        trial_id = tune.get_context().get_trial_id()
    node_id = ray.get_runtime_context().get_node_id()
    registry.hello.remote(trial_id, node_id, os.getpid())
    return True
