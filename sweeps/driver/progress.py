"""One line per finished trial, on the driver's stdout, beside Tune's table.

    [3/12 done] C30-g100-z10-s1-1b2c3_00002: recon 118.7 nats, metric.mig 0.070, feasible ·
    best feasible so far: C=30, γ=100, z=10, seed 1 (metric.mig 0.070, recon 118.7)

The line is computed from every trial Tune passes to the callback, so a resumed sweep counts
the trials finished before the interruption too.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from ray.tune import Callback

from analysis.redaction import redact
from sweeps.trial.config import TrialConfig


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

    def _print(self, trials: list, trial: Any, *, errored: bool) -> None:
        print(self.line(trials, trial, errored=errored), file=self.out or sys.stdout, flush=True)

    def line(self, trials: list, trial: Any, *, errored: bool = False) -> str:
        ended = [t for t in trials if t is not trial and t.status in ("TERMINATED", "ERROR")]
        this = f"{trial}: {self._outcome(trial, errored)}"
        best = self._best([*ended, trial] if not errored else ended)
        return f"[{len(ended) + 1}/{self.total} done] {this} · best feasible so far: {best}"

    def _outcome(self, trial: Any, errored: bool) -> str:
        result = trial.last_result or {}
        if errored or result.get("error") or not result.get("final"):
            return f"failed ({redact(_reason(trial, result))})"
        recon, score = result.get("recon_nll"), result.get(self.metric)
        feasible = "feasible" if result.get("feasible") else "over budget"
        return f"recon {_num(recon, '.1f')} nats, {self.metric} {_num(score, '.3f')}, {feasible}"

    def _best(self, trials: list) -> str:
        scored = [
            (t.last_result[self.metric], t)
            for t in trials
            if t.status != "ERROR"
            and (t.last_result or {}).get("final")
            and (t.last_result or {}).get("feasible")
            and _finite(t.last_result.get(self.metric))
        ]
        if not scored:
            return "none yet"
        score, best = max(scored, key=lambda pair: pair[0])
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
