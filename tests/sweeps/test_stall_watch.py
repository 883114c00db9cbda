"""The hung-trial watch (``sweeps.driver.stall.StallWatch``): whom it kills, and when."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sweeps.driver import stall
from sweeps.driver.stall import STALL_FACTOR, STALL_FLOOR_S, StallWatch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(stall.time, "monotonic", clock)
    return clock


def trial(trial_id: str, steps: int = 100) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, status="RUNNING", config={"steps": steps})


def watch_with_kills(timeout: float | None) -> tuple[StallWatch, list[str]]:
    watch, killed = StallWatch(timeout), []
    watch._kill_worker = lambda t, silent: (
        killed.append(t.trial_id),
        watch.dead.add(watch.worker[t.trial_id]),
    )
    return watch, killed


def report(watch: StallWatch, t, step: int, pid: int = 42) -> None:
    watch.on_trial_result(0, [t], t, {"step": step, "worker_node": "n", "pid": pid})


def advance(watch: StallWatch, clock: Clock, trials: list, seconds: float) -> None:
    """Time passes in 1-s loop steps, as in Tune's loop."""
    for _ in range(int(seconds)):
        clock.now += 1.0
        watch.on_step_end(0, trials)


def test_a_silent_trial_is_killed_after_the_timeout_and_a_reporting_one_is_not(clock):
    watch, killed = watch_with_kills(timeout=15)
    hung, healthy = trial("hung"), trial("healthy")
    for t, pid in ((hung, 42), (healthy, 50)):
        watch.on_trial_start(0, [], t)
        report(watch, t, 10, pid)
    for second in range(20):
        advance(watch, clock, [hung, healthy], 1)
        if second % 3 == 0:
            report(watch, healthy, 20 + second, pid=50)
    assert killed == ["hung"]
    watch.on_trial_recover(0, [], hung)  # Tune retries it on a new worker
    advance(watch, clock, [hung], 30)
    assert killed == ["hung"]  # the killed worker is not killed again
    report(watch, hung, 10, pid=43)  # the new worker reports, then hangs too
    advance(watch, clock, [hung], 20)
    assert killed == ["hung", "hung"]


def test_a_start_announced_after_the_first_report_keeps_the_worker_watched(clock):
    watch, killed = watch_with_kills(timeout=15)
    t = trial("late")
    report(watch, t, 20)  # the new worker's first report ...
    watch.on_trial_start(0, [], t)  # ... can come before Tune says the trial started
    advance(watch, clock, [t], 20)
    assert killed == ["late"]


def test_a_restore_announced_after_the_first_report_keeps_the_worker_watched(clock):
    watch, killed = watch_with_kills(timeout=15)
    t = trial("restored")
    watch.on_trial_start(0, [], t)
    report(watch, t, 60)  # the restored worker's first report ...
    watch.on_trial_restore(0, [], t)  # ... can come before Tune says it restored
    advance(watch, clock, [t], 20)
    assert killed == ["restored"]


def test_the_default_limit_follows_the_trials_report_interval(clock):
    watch, killed = watch_with_kills(timeout=None)
    slow = trial("slow")
    watch.on_trial_start(0, [], slow)
    report(watch, slow, 10)
    clock.now += 100.0  # a report every 100 s
    report(watch, slow, 20)
    assert watch.limit("slow") == pytest.approx(STALL_FACTOR * 100.0)
    assert StallWatch(None).limit("unseen") == STALL_FLOOR_S
    advance(watch, clock, [slow], STALL_FACTOR * 100.0 - 5)
    assert killed == []
    advance(watch, clock, [slow], 10)
    assert killed == ["slow"]


def test_the_final_scoring_gets_the_floor_even_with_a_short_timeout(clock):
    watch, killed = watch_with_kills(timeout=15)
    scoring = trial("scoring", steps=100)
    watch.on_trial_start(0, [], scoring)
    report(watch, scoring, 100)  # the last training step: scoring follows, silently
    advance(watch, clock, [scoring], 60)
    assert killed == []
    advance(watch, clock, [scoring], STALL_FLOOR_S)
    assert killed == ["scoring"]


def test_a_recovered_trials_old_worker_is_never_killed_its_new_one_is(clock):
    """The worker was lost (not killed here): after Tune's recovery the old pid may belong to
    another process by now; only the new worker, once it reports, is watched."""
    watch, killed = watch_with_kills(timeout=15)
    t = trial("lost")
    watch.on_trial_start(0, [], t)
    report(watch, t, 10, pid=42)
    watch.on_trial_recover(0, [t], t)
    advance(watch, clock, [t], 60)  # the new worker takes long to start: nothing to kill
    assert killed == []
    report(watch, t, 20, pid=43)
    advance(watch, clock, [t], 20)
    assert killed == ["lost"] and watch.dead == {("n", 43)}
