"""One line per finished trial, on the driver's stdout, beside Tune's table.

    [3/12 done] C30-g100-z10-s1-1b2c3_00002: recon 118.7 nats, metric.mig 0.070, feasible ·
    best feasible so far: C=30, γ=100, z=10, seed 1 (metric.mig 0.070, recon 118.7)

A driver counts the trials Tune passes to it once, at its first line (so a resumed sweep
counts the trials finished before the interruption too), then keeps count as trials end.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from ray.tune import Callback

from analysis.redaction import redact
from betavae.catalogue import PRIMARY_KEY
from sweeps.config import live
from sweeps.trial.config import TrialConfig

UDR_KEY = PRIMARY_KEY["udr"]


class Progress(Callback):
    """Prints ``k/N done · this trial · best feasible so far`` as each trial ends."""

    def __init__(self, metric: str, total: int, out: TextIO | None = None) -> None:
        self.metric = metric
        self.total = total
        self.out = out

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "out": None}

    # Tune calls these before it sets the trial's status, so the trial is counted by hand.
    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trials, trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trials, trial, errored=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if "_ended" in self.__dict__:  # a trial that ended in ERROR runs again
            self._ended.discard(trial.trial_id)
            self._finished.pop(trial.trial_id, None)
            self._forget(trial.trial_id)

    def _print(self, trials: list, trial: Any, *, errored: bool) -> None:
        print(self.line(trials, trial, errored=errored), file=self.out or sys.stdout, flush=True)

    # What has ended and the feasible scores are kept as trials end, not recounted from every
    # trial at each line (at 10,000 trials that rescan was a third of Tune's loop). A driver
    # (or a callback restored from an earlier one) counts the trials it is given once.
    def _catch_up(self, trials: list, trial: Any) -> None:
        if "_ended" in self.__dict__:
            return
        self._ended: set[str] = set()
        self._finished: dict[str, Any] = {}  # trials that ended with a final result
        self._feasible: dict[str, tuple[float, Any]] = {}
        self._leader: tuple[float, Any] | None = None
        self._seen: dict[str, float] = {}
        for t in trials:
            if t is not trial and t.status in ("TERMINATED", "ERROR"):
                self._ended.add(t.trial_id)
                if t.status != "ERROR":
                    self._note(t)

    def _take_published(self) -> None:
        """Scores the searcher computed across a setting's seeds (UDR, ``sweeps.config.live``)
        since the last line: they may change a trial seen before."""
        for trial_id, scores in live.LIVE.scores.items():
            if self.metric in scores and self._seen.get(trial_id) != scores[self.metric]:
                self._seen[trial_id] = scores[self.metric]
                if trial_id in self._finished:
                    self._note(self._finished[trial_id])

    def _score(self, trial: Any) -> Any:
        """The trial's searched score: in its result, else the latest published for it."""
        value = (trial.last_result or {}).get(self.metric)
        return value if value is not None else self._seen.get(trial.trial_id)

    def _note(self, trial: Any) -> None:
        """Remember a finished trial's score if it is feasible; keep the leader."""
        result = trial.last_result or {}
        score = self._score(trial)
        if result.get("final"):
            self._finished[trial.trial_id] = trial
        if not (result.get("final") and result.get("feasible") and _finite(score)):
            self._forget(trial.trial_id)
            return
        self._feasible[trial.trial_id] = (score, trial)
        if self._leader is None or score > self._leader[0]:
            self._leader = (score, trial)
        elif self._leader[1].trial_id == trial.trial_id:  # the leader's score went down
            self._leader = max(self._feasible.values(), key=lambda pair: pair[0])

    def _forget(self, trial_id: str) -> None:
        """The trial no longer competes for the best (it failed, or runs again)."""
        if self._feasible.pop(trial_id, None) is not None and self._leader[1].trial_id == trial_id:
            values = self._feasible.values()
            self._leader = max(values, key=lambda pair: pair[0]) if values else None

    def line(self, trials: list, trial: Any, *, errored: bool = False) -> str:
        self._catch_up(trials, trial)
        self._take_published()
        self._ended.add(trial.trial_id)
        if errored:
            self._finished.pop(trial.trial_id, None)
            self._forget(trial.trial_id)
        else:
            self._note(trial)
        this = f"{trial}: {self._outcome(trial, errored)}"
        return (
            f"[{len(self._ended)}/{self.total} done] {this} · best feasible so far: {self._best()}"
        )

    def _outcome(self, trial: Any, errored: bool) -> str:
        result = trial.last_result or {}
        if errored or result.get("error") or not result.get("final"):
            return f"failed ({redact(_reason(trial, result))})"
        recon, score = result.get("recon_nll"), self._score(trial)
        feasible = "feasible" if result.get("feasible") else "over budget"
        shown = _num(score, ".3f")
        if score is None and self.metric == UDR_KEY:
            shown = "waits for another seed of the setting"
        return f"recon {_num(recon, '.1f')} nats, {self.metric} {shown}, {feasible}"

    def _best(self) -> str:
        if self._leader is None:
            return "none yet"
        score, best = self._leader
        label = TrialConfig.from_tune(best.config).label()
        recon = best.last_result.get("recon_nll")
        return f"{label} ({self.metric} {score:.3f}, recon {_num(recon, '.1f')})"


def _reason(trial: Any, result: dict) -> str:
    if result.get("error"):
        return str(result["error"]).splitlines()[-1][:200]
    try:
        error = trial.get_error()
    except Exception:  # the reason is best effort
        error = None
    if error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        return lines[-1].strip()[:200] if lines else "errored"
    return "errored"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if _finite(value) else "n/a"
