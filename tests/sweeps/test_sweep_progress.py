"""The driver's one line per finished trial: k/N, this trial's outcome, the best so far."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from sweeps.driver.progress import Progress

BETA = {"objective": "beta", "latent_dim": 10, "seed": 0, "steps": 100}


@dataclass
class FakeTrial:
    name: str
    status: str
    last_result: dict
    config: dict = field(default_factory=lambda: dict(BETA))

    def __str__(self) -> str:
        return self.name

    def get_error(self) -> str:
        return "Traceback:\n  File x\nRuntimeError: worker died"


def final(recon: float, mig: float, feasible: bool) -> dict:
    return {"final": 1.0, "recon_nll": recon, "metric.mig": mig, "feasible": float(feasible)}


def test_each_finished_trial_prints_its_outcome_and_the_best_feasible_so_far():
    out = io.StringIO()
    progress = Progress("metric.mig", total=4, out=out)
    # Tune calls the hook while the ending trial is still RUNNING
    good = FakeTrial("b4", "RUNNING", final(120.0, 0.07, True), {**BETA, "beta": 4.0})
    over = FakeTrial("b1", "RUNNING", final(150.0, 0.20, False), {**BETA, "beta": 1.0})
    running = FakeTrial("b8", "RUNNING", {"step": 10})
    trials = [good, over, running]
    progress.on_trial_complete(0, trials, good)
    good.status = "TERMINATED"
    progress.on_trial_complete(0, trials, over)
    first, second = out.getvalue().splitlines()
    assert first == (
        "[1/4 done] b4: recon 120.0 nats, metric.mig 0.070, feasible · "
        "best feasible so far: β=4, z=10, seed 0 (metric.mig 0.070, recon 120.0)"
    )
    # the over-budget trial scores higher but is never the best feasible one
    assert second == (
        "[2/4 done] b1: recon 150.0 nats, metric.mig 0.200, over budget · "
        "best feasible so far: β=4, z=10, seed 0 (metric.mig 0.070, recon 120.0)"
    )


def test_failed_trials_say_why_and_none_feasible_says_so():
    out = io.StringIO()
    progress = Progress("metric.mig", total=3, out=out)
    diverged = FakeTrial("b30", "RUNNING", {"step": 30, "error": "diverged: loss is nan"})
    crashed = FakeTrial("b2", "RUNNING", {"step": 10})
    progress.on_trial_complete(0, [diverged, crashed], diverged)
    diverged.status = "TERMINATED"
    progress.on_trial_error(0, [diverged, crashed], crashed)
    first, second = out.getvalue().splitlines()
    assert first == (
        "[1/3 done] b30: failed (diverged: loss is nan) · best feasible so far: none yet"
    )
    assert second.startswith("[2/3 done] b2: failed (RuntimeError: worker died)")
