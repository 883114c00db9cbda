"""Tune's first-in-first-out choice of the next trial, without rescanning the finished ones.

Tune asks its scheduler for a trial to start on every step of its loop. Its
``FIFOScheduler`` walks the whole trial list each time, twice (the first PENDING, else the first
PAUSED): at 10,000 trials that walk was 18% of the driver's main loop (py-spy,
bench/RESULTS.md), and it grows with every trial the sweep ends. Trials are only ever appended
to Tune's list, and within one driver a TERMINATED trial never runs again, so the finished
prefix of the list can be skipped for good: the choice is the same trial Tune's would pick.
ERROR trials are not skipped (a retry may set them PENDING again).

Each trial it sees finished (as it ends, and as the prefix passes it, which covers the
trials a resumed driver restores) is *retired*: Tune's running statistics of every reported
metric (min, max, averages over the last 5 and 10 results: ~10 kB a trial) and the records of
its older checkpoints (their folders are gone once a trial finishes) are dropped. Tune keeps
them in its experiment snapshot, rewritten whole as the sweep goes, for trials that can no
longer report; the sweep reads a finished trial's last result and last checkpoint only, which
stay. The snapshot went from 29 to 10.6 kB a trial (289 → 107 MB at 10,000 trials, measured
with the sweep's other changes of the day: bench/RESULTS.md).

Pickled with the Tuner (``tuner.pkl``): it must stay importable at this path, and a restored
one starts from the top again (the list it sees then is a new driver's).
"""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler


class FinishedPrefixFIFO(FIFOScheduler):
    """``FIFOScheduler`` that remembers where the trials that have not terminated begin."""

    def __init__(self) -> None:
        super().__init__()
        self._first_unfinished = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._first_unfinished = 0

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        trials = tune_controller.get_trials()
        start = min(self._first_unfinished, len(trials))
        while start < len(trials) and trials[start].status == Trial.TERMINATED:
            retire(trials[start])
            start += 1
        self._first_unfinished = start
        for wanted in (Trial.PENDING, Trial.PAUSED):
            for index in range(start, len(trials)):
                if trials[index].status == wanted:
                    return trials[index]
        return None

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, result)
        retire(trial)

    def debug_string(self) -> str:
        return "Using FIFO scheduling algorithm (finished trials skipped)."


def retire(trial: Trial) -> None:
    """Drop what Tune keeps of a finished trial that nothing reads again: its per-metric
    running statistics, and its checkpoint records but the latest (see the module doc)."""
    metadata = getattr(trial, "run_metadata", None)
    if metadata is None:
        return
    if metadata.metric_analysis or metadata.metric_n_steps:
        metadata.metric_analysis = {}  # each assignment drops Tune's cached JSON of it
        metadata.metric_n_steps = {}
    manager = metadata.checkpoint_manager
    latest = getattr(manager, "latest_checkpoint_result", None)
    kept = getattr(manager, "_checkpoint_results", None)
    if latest is not None and kept is not None and kept != [latest]:
        manager._checkpoint_results = [latest]
        metadata.invalidate_cache()
