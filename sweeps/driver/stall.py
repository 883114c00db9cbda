"""Hung trials: a trial that reports nothing for too long is killed, and Tune retries it.

A worker can hang without dying: a stuck GPU kernel, a deadlocked data loader, a node's
file system that stopped answering, a process stopped by a signal. Ray sees nothing wrong, so
without a watch the sweep waits forever. ``StallWatch`` is a Tune callback on the driver: it
notes when each running trial last reported, and when a trial has been silent longer than its
limit it kills the trial's worker process (``SIGKILL``, sent by a zero-CPU Ray task pinned to
the worker's node). Ray reports the worker lost; Tune restores the trial from its last
checkpoint (``FailureConfig.max_failures``), exactly as after a lost node.

The limit is ``--stall-timeout`` seconds; by default it is derived from the trial's own report
interval: ``STALL_FACTOR`` times the longest gap seen between its reports, and never less than
``STALL_FLOOR_S``. The final scoring, the longest silence of a healthy trial (metrics, pictures,
the final checkpoint), always gets at least ``STALL_FLOOR_S``, and so does a trial's start.

The watch starts when Tune places the trial (its worker has started): a hang while restoring
a checkpoint, loading data or initialising a GPU is caught like one in training. The trial's
code announces its worker (node, pid) first thing (``sweeps.trial.announce``), so the watch
knows whom to kill before any report; each report names the worker too. A worker that hangs
inside Ray before the trial's code runs is never announced: the watch names it once and
leaves it to Ray. The kill is not waited for, and the announcements are collected without
waiting, so the watch never blocks Tune's loop (a blocked loop would delay every report).
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from ray.tune import Callback

from sweeps.config import live

STALL_FACTOR = 10.0
STALL_FLOOR_S = 300.0
#: How often the running trials are checked (their limits are minutes).
SCAN_EVERY_S = 1.0


def _kill(pid: int) -> str:
    import os

    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "already gone"
    return "killed"


class StallWatch(Callback):
    """Tune callback: kill the worker of a trial silent for longer than its limit."""

    def __init__(self, timeout_s: float | None = None, *, prog: str = "sweep") -> None:
        self.timeout_s = timeout_s
        self.prog = prog
        # trial id → its last sign of life: placed, announced or reported
        self.last: dict[str, float] = {}
        self.gap: dict[str, float] = {}  # trial id → the longest gap between its reports
        self.worker: dict[str, tuple[str, int]] = {}  # trial id → (node id, pid)
        self.dead: set[tuple[str, int]] = set()  # (node, pid) of workers this watch killed
        self.scoring: set[str] = set()  # trials past their last training step
        self.reported: set[str] = set()  # trials that reported since they (re)started
        self.running: set[str] = set()  # trials whose current worker has reported
        self.unknown: set[str] = set()  # trials over their limit whose worker never announced
        self.pending_kills: list[Any] = []
        self._registry: Any = None  # sweeps.trial.announce.WorkerRegistry, made on first use
        self._taking: Any = None  # the registry's pending answer
        self._scanned = float("-inf")  # when the trials were last checked (monotonic)

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks into the experiment's state. A restored watch serves a
        # new driver whose trials all start on new workers: only the limits carry over (no
        # old pid is ever killed, no Ray handle is kept).
        return {"timeout_s": self.timeout_s, "prog": self.prog, "gap": self.gap}

    def __setstate__(self, state: dict) -> None:
        # Also reads a watch pickled by an older version, with more fields: they are dropped.
        self.__init__(state.get("timeout_s"), prog=state.get("prog", "sweep"))
        self.gap = dict(state.get("gap", {}))

    def limit(self, trial_id: str) -> float:
        # This driver's --stall-timeout: a restored watch holds the first driver's.
        timeout_s = live.stall_timeout(self.timeout_s)
        if timeout_s is not None:
            limit = timeout_s
        else:
            limit = max(STALL_FLOOR_S, STALL_FACTOR * self.gap.get(trial_id, 0.0))
        if trial_id in self.scoring or trial_id not in self.running:
            limit = max(limit, STALL_FLOOR_S)  # scoring, or starting (data, restore, GPU)
        return limit

    # -- Tune events -------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # Tune may announce the start after the new worker's first report: the worker it
        # reported stays known (each report names it), only the clock and the gaps restart.
        self._listen()
        self.last[trial.trial_id] = time.monotonic()
        self.reported.discard(trial.trial_id)
        self.scoring.discard(trial.trial_id)
        self.unknown.discard(trial.trial_id)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Failed; Tune starts it again on a new worker. The old worker is gone (lost, or
        killed here): it is forgotten, so that its pid, which the system may give to another
        process, is never killed; the new worker is watched from its announcement."""
        self.on_trial_start(iteration, trials, trial, **info)
        self.worker.pop(trial.trial_id, None)
        self.running.discard(trial.trial_id)

    def on_trial_restore(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Loaded from its checkpoint: Tune may say so after the worker's first report, so
        the worker it already reported stays watched."""
        self.last.setdefault(trial.trial_id, time.monotonic())

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        now = time.monotonic()
        trial_id = trial.trial_id
        if trial_id in self.reported and trial_id in self.last:  # a gap between two reports
            self.gap[trial_id] = max(self.gap.get(trial_id, 0.0), now - self.last[trial_id])
        self.reported.add(trial_id)
        self.running.add(trial_id)
        self.last[trial_id] = now
        if result.get("worker_node") and result.get("pid"):
            self.worker[trial_id] = (str(result["worker_node"]), int(result["pid"]))
        if int(result.get("step", 0)) >= int(trial.config.get("steps", 0) or 0):
            self.scoring.add(trial_id)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._collect_announcements()
        now = time.monotonic()
        # Tune's loop steps many times a second and ``trials`` holds every trial of the
        # sweep, finished ones too: scanning them each step made the driver's cost per trial
        # grow with the sweep (a quarter of the loop at 6,000 trials). Limits are minutes.
        if now - self._scanned < SCAN_EVERY_S:
            return
        self._scanned = now
        for trial in trials:
            trial_id = trial.trial_id
            if trial.status != "RUNNING" or trial_id not in self.last:
                continue
            if self.worker.get(trial_id) in self.dead:  # killed: wait for its new worker
                continue
            silent = now - self.last[trial_id]
            if silent <= self.limit(trial_id):
                continue
            if trial_id in self.worker:
                self._kill_worker(trial, silent)
            elif trial_id not in self.unknown:
                self.unknown.add(trial_id)
                print(
                    f"{self.prog}: trial {trial} was placed {silent:.0f} s ago and its code "
                    "has not started (its worker never announced itself): Ray is still "
                    "starting it; it is not killed",
                    file=sys.stderr,
                    flush=True,
                )

    # -- the workers' announcements (sweeps.trial.announce) ------------------------------
    def _listen(self) -> None:
        """Start the registry the trials announce their workers to (once per driver, again
        if it was lost), on the driver's node: a lost worker node must not take it along."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._registry is not None or not ray.is_initialized():
            return
        from sweeps.trial.announce import REGISTRY_NAME, WorkerRegistry

        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        self._registry = WorkerRegistry.options(
            name=REGISTRY_NAME, get_if_exists=True, scheduling_strategy=here
        ).remote()

    def _collect_announcements(self) -> None:
        """Take the announcements that have arrived, without waiting for the registry."""
        import ray

        if self._registry is None:
            return
        if self._taking is None:
            self._taking = self._registry.take.remote()
        ready, _ = ray.wait([self._taking], timeout=0)
        if not ready:
            return
        self._taking = None
        try:
            announcements = ray.get(ready[0])
        except ray.exceptions.RayError:  # the registry is gone (its node was lost): anew
            self._registry = None
            self._listen()
            return  # what it held is lost: those workers are known again by their reports
        for trial_id, node, pid in announcements:
            self.announced(trial_id, node, pid)

    def announced(self, trial_id: str, node: str, pid: int) -> None:
        """A trial's worker started its code: a sign of life, and the worker to kill if it
        hangs from now on."""
        if (node, pid) in self.dead:
            return
        self.worker[trial_id] = (node, pid)
        self.last[trial_id] = time.monotonic()
        self.unknown.discard(trial_id)

    # -- the kill ------------------------------------------------------------------------
    def _kill_worker(self, trial: Any, silent: float) -> None:
        node, pid = self.worker[trial.trial_id]
        self.dead.add((node, pid))  # killed once: never again (the pid may be reused)
        print(
            f"{self.prog}: trial {trial} reported nothing for {silent:.0f} s (limit "
            f"{self.limit(trial.trial_id):.0f} s, --stall-timeout): killing its worker (pid "
            f"{pid}); Tune retries it from its last checkpoint",
            file=sys.stderr,
            flush=True,
        )
        self._send_kill(node, pid)

    def _send_kill(self, node: str, pid: int) -> None:
        """SIGKILL ``pid`` on ``node``, from a task Ray places there."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        task = ray.remote(num_cpus=0, max_retries=0, scheduling_strategy=strategy)(_kill)
        # Not waited for: Tune's loop goes on. If the node is gone, Ray fails the trial itself.
        self.pending_kills.append(task.remote(pid))
