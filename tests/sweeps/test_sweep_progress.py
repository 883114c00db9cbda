"""The driver's one line per finished trial: k/N, this trial's outcome, the best so far."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from sweeps.driver.progress import Progress

BETA = {"objective": "beta", "latent_dim": 10, "seed": 0, "steps": 100}
B2 = {**BETA, "beta": 2.0}


@dataclass
class FakeTrial:
    name: str
    status: str
    last_result: dict
    config: dict = field(default_factory=lambda: dict(BETA))

    def __str__(self) -> str:
        return self.name

    @property
    def trial_id(self) -> str:
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


class CountedTrial(FakeTrial):
    """A trial whose status reads are counted."""

    reads = 0

    @property
    def status(self) -> str:
        CountedTrial.reads += 1
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value


def test_a_driver_counts_the_trials_before_it_once_then_keeps_count():
    """A resumed sweep's first line counts the trials that ended before it; later lines do not
    walk every trial again (at 10,000 trials that rescan was a third of Tune's loop)."""
    out = io.StringIO()
    progress = Progress("metric.mig", total=10_003, out=out)
    trials = [
        CountedTrial(f"t{i}", "TERMINATED", final(120.0, i / 1e5, True)) for i in range(10_000)
    ]
    new = [CountedTrial(f"n{i}", "RUNNING", final(110.0, 0.5 + i / 10, True), B2) for i in range(3)]
    trials += new
    progress.on_trial_complete(0, trials, new[0])
    new[0].status = "TERMINATED"
    assert out.getvalue().splitlines()[-1].startswith("[10001/10003 done] n0:")
    CountedTrial.reads = 0
    progress.on_trial_complete(0, trials, new[1])
    assert CountedTrial.reads < 10  # nothing rescanned
    assert (
        "[10002/10003 done] n1:" in out.getvalue() and "metric.mig 0.600, recon" in out.getvalue()
    )


def test_udr_scores_published_later_reach_the_line_and_the_best():
    """UDR comes from the searcher once a setting has two seeds; a trial's line says it waits,
    and the best follows the published scores, also when the leader's score drops."""
    from sweeps.config import live

    out = io.StringIO()
    progress = Progress("metric.udr", total=4, out=out)
    first = FakeTrial("a", "RUNNING", {"final": 1.0, "recon_nll": 100.0, "feasible": 1.0}, B2)
    second = FakeTrial("b", "RUNNING", {"final": 1.0, "recon_nll": 101.0, "feasible": 1.0}, B2)
    progress.on_trial_complete(0, [first, second], first)
    assert "metric.udr waits for another seed of the setting" in out.getvalue()
    first.status = "TERMINATED"
    live.publish_scores({"a": {"metric.udr": 0.9}, "b": {"metric.udr": 0.8}})
    progress.on_trial_complete(0, [first, second], second)
    assert out.getvalue().splitlines()[-1].endswith("(metric.udr 0.900, recon 100.0)")
    live.take_scores()
    third = FakeTrial("c", "RUNNING", {"final": 1.0, "recon_nll": 99.0, "feasible": 1.0}, B2)
    live.publish_scores({"a": {"metric.udr": 0.5}, "c": {"metric.udr": 0.7}})
    progress.on_trial_complete(0, [first, second, third], third)
    live.take_scores()
    assert out.getvalue().splitlines()[-1].endswith("(metric.udr 0.800, recon 101.0)")
