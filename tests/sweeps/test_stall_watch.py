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
    """A watch whose kills are recorded (trial ids) instead of sent through Ray; the rest of
    a kill (the worker remembered as killed, never killed again) is the product's."""
    watch, killed = StallWatch(timeout), []
    kill_worker = watch._kill_worker

    def recorded(t, silent: float) -> None:
        killed.append(t.trial_id)
        kill_worker(t, silent)

    watch._kill_worker = recorded
    watch._send_kill = lambda node, pid: None
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


def test_a_worker_hung_before_its_first_report_is_killed_from_its_placement(clock, capsys):
    """Restoring, loading data, initialising a GPU: silent from placement; the start gets the
    floor (not the short timeout), then the announced worker is killed."""
    watch, killed = watch_with_kills(timeout=15)
    t = trial("starting")
    watch.on_trial_start(0, [t], t)
    watch.announced("starting", "n", 42)
    advance(watch, clock, [t], STALL_FLOOR_S - 5)
    assert killed == []
    advance(watch, clock, [t], 10)
    assert killed == ["starting"] and watch.dead == {("n", 42)}


def test_a_worker_that_never_announced_is_named_once_and_not_killed(clock, capsys):
    watch, killed = watch_with_kills(timeout=15)
    t = trial("unplaced")
    watch.on_trial_start(0, [t], t)
    advance(watch, clock, [t], 2 * STALL_FLOOR_S)
    assert killed == []
    assert capsys.readouterr().err.count("never announced itself") == 1
    watch.announced("unplaced", "n", 7)  # its code starts at last: a sign of life
    advance(watch, clock, [t], STALL_FLOOR_S - 5)
    assert killed == []


def test_a_restored_watch_keeps_its_limits_and_no_old_worker(clock):
    """Tune pickles the watch into the experiment's state; the driver that restores it runs
    new workers, so no pid of the old driver's is ever killed."""
    import pickle

    watch, _ = watch_with_kills(timeout=None)
    t = trial("resumed")
    watch.on_trial_start(0, [t], t)
    report(watch, t, 10, pid=42)
    clock.now += 100.0
    report(watch, t, 20, pid=42)
    for fake in ("_kill_worker", "_send_kill"):  # the fakes are not part of the state
        watch.__dict__.pop(fake)
    restored = pickle.loads(pickle.dumps(watch))
    assert restored.worker == {} and restored.last == {}
    assert restored.limit("resumed") == pytest.approx(STALL_FACTOR * 100.0)


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_a_real_hung_worker_is_killed_by_its_announcement(local_ray, clock):
    """No fake: a Ray actor announces itself as a trial's code does, then hangs; the watch's
    kill ends that process, and only that one."""
    import os
    import time

    from sweeps.trial.announce import announce_worker

    @local_ray.remote(num_cpus=0)
    class Worker:
        def start(self, trial_id: str) -> int:
            assert announce_worker(trial_id)
            return os.getpid()

    watch = StallWatch(timeout_s=15)
    t = trial("real")
    watch.on_trial_start(0, [t], t)  # the registry starts with the first placed trial
    hung, bystander = Worker.remote(), Worker.remote()
    pid = local_ray.get(hung.start.remote("real"))
    other = local_ray.get(bystander.start.remote("other"))
    for _ in range(600):  # (time.monotonic is the test's clock: count the waits)
        watch.on_step_end(0, [t])  # collected without blocking, over a few loop steps
        if "real" in watch.worker:
            break
        time.sleep(0.05)
    assert watch.worker["real"][1] == pid
    clock.now += STALL_FLOOR_S + 1
    watch.on_step_end(0, [t])
    assert local_ray.get(watch.pending_kills) == ["killed"]
    for _ in range(300):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}")
    assert os.path.exists(f"/proc/{other}")


def test_a_lost_registry_is_started_again_and_never_stops_the_sweep(local_ray, clock):
    """The registry's node can be lost (a worker node gone): Tune's loop must go on, and the
    workers that start later are known again."""
    import time

    from sweeps.trial.announce import REGISTRY_NAME, announce_worker

    watch = StallWatch(timeout_s=15)
    t = trial("after")
    watch.on_trial_start(0, [t], t)
    local_ray.kill(watch._registry)
    for _ in range(600):
        watch.on_step_end(0, [t])  # raises nothing while the lost registry is replaced
        if watch._registry is not None and watch._taking is None:
            try:
                local_ray.get_actor(REGISTRY_NAME)
            except ValueError:
                pass
            else:
                if announce_worker("after") and "after" in watch.worker:
                    break
        time.sleep(0.05)
    assert "after" in watch.worker
