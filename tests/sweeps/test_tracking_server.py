"""The MLflow callback against a server that goes away, answers late or holds thousands of runs:
nothing raises into Tune, nothing is created twice, and a trial's end costs no read-back."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient
from tracking_support import FakeTrial, children

from sweeps.tracking.callback import MLflowTracking


class Outage:
    """Wraps a client: every call raises while ``down`` is set (a stopped server)."""

    def __init__(self, client):
        self.client, self.down, self.failed = client, False, 0

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            if self.down:
                self.failed += 1
                raise ConnectionError("Connection refused")
            return method(*args, **kwargs)

        return call


def test_an_outage_skips_points_then_the_checkpoint_history_backfills_them(store, tmp_path):
    import json

    from ray import tune

    client, exp, parent, uri = store
    callback = MLflowTracking(uri, exp, parent, patience_s=5, retry_every_s=0.01, background=False)
    outage = Outage(MlflowClient(uri))
    callback.writer._client = outage
    trial = FakeTrial("out")
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, {"step": 10, "train/loss": 5.0})
    outage.down = True  # nothing raises into Tune while the server is away
    callback.on_trial_result(0, [], trial, {"step": 20, "train/loss": 4.0})
    final = {"step": 30, "final": 1.0, "metric.mig": 0.25, "recon_nll": 90.0}
    callback.on_trial_result(0, [], trial, final)
    assert outage.failed == 2
    outage.down = False
    folder = tmp_path / "ckpt"
    folder.mkdir()
    rows = [{"step": s, "train/loss": v} for s, v in ((10, 5.0), (20, 4.0), (30, 3.0))]
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    trial.checkpoint, trial.last_result = tune.Checkpoint.from_directory(folder), final
    callback.on_trial_complete(0, [], trial)
    (run,) = children(client, exp)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted((m.step, m.value) for m in history) == [(10, 5.0), (20, 4.0), (30, 3.0)]
    assert run.data.metrics["metric.mig"] == 0.25 and run.info.status == "FINISHED"


class Counting:
    """Wraps a client, counting its calls by name."""

    def __init__(self, client):
        import collections

        self.client, self.calls = client, collections.Counter()

    def __getattr__(self, name):
        self.calls[name] += 1
        return getattr(self.client, name)


def _history_checkpoint(folder, steps):
    import json

    from ray import tune

    folder.mkdir()
    rows = [{"step": s, "train/loss": 100.0 - s} for s in steps]
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tune.Checkpoint.from_directory(folder)


@pytest.mark.parametrize("reported", [(10, 20, 30), (30,)], ids=["every-point", "restored"])
def test_a_trials_end_back_fills_from_what_this_driver_logged_without_reading_mlflow(
    store, tmp_path, reported
):
    """At 10,000 trials the read of each run's curve back at its end was a cost that grew with
    the store. A run this driver made needs none: it knows the steps it logged. "restored": a
    trial whose run this driver made but whose checkpoint holds steps an earlier (killed)
    driver saw and never sent; they are still back-filled."""
    client, exp, parent, uri = store
    callback = MLflowTracking(uri, exp, parent, background=False)
    counting = Counting(MlflowClient(uri))
    callback.writer._client = counting
    trial = FakeTrial("t")
    callback.on_trial_start(0, [], trial)
    for step in reported:
        callback.on_trial_result(0, [], trial, {"step": step, "train/loss": 100.0 - step})
    final = {"step": 30, "final": 1.0, "metric.mig": 0.5, "recon_nll": 80.0}
    callback.on_trial_result(0, [], trial, final)
    trial.checkpoint = _history_checkpoint(tmp_path / "ckpt", (10, 20, 30))
    trial.last_result = final
    callback.on_trial_complete(0, [], trial)
    assert counting.calls["get_metric_history"] == 0
    (run,) = children(client, exp)
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [10, 20, 30]
    assert run.info.status == "FINISHED"


def test_a_trial_this_drivers_searcher_created_gets_its_run_without_a_search(store, monkeypatch):
    """A new trial's run was found by a search of the store's tags, then read back and set
    RUNNING: three calls that at thousands of runs cost more than the trial's results. A trial
    the searcher created in this driver can have no run yet: it is created, nothing more. A
    trial restored from an earlier driver is still searched for (no duplicate run)."""
    from sweeps.config import live

    client, exp, parent, uri = store
    monkeypatch.setattr(live.LIVE, "created", {"new"})
    earlier = MLflowTracking(uri, exp, parent, background=False)
    earlier.on_trial_start(0, [], FakeTrial("old"))  # an earlier driver's run
    callback = MLflowTracking(uri, exp, parent, background=False)
    counting = Counting(MlflowClient(uri))
    callback.writer._client = counting
    callback.on_trial_start(0, [], FakeTrial("new"))
    assert counting.calls["create_run"] == 1
    assert not {"search_runs", "get_run", "update_run"} & set(counting.calls)
    callback.on_trial_start(0, [], FakeTrial("old"))
    assert counting.calls["search_runs"] == 1 and counting.calls["create_run"] == 1
    runs = {r.data.tags["betavae.trial_id"]: r for r in children(client, exp)}
    assert sorted(runs) == ["new", "old"] and runs["new"].info.status == "RUNNING"


class LateAnswer(Counting):
    """A server that carries out ``create_run`` but whose answer never arrives (a timeout)."""

    def __getattr__(self, name):
        method = super().__getattr__(name)
        if name != "create_run" or self.calls[name] > 1:
            return method

        def timed_out(*args, **kwargs):
            method(*args, **kwargs)
            raise TimeoutError("read timed out")

        return timed_out


def test_a_run_whose_creation_timed_out_is_found_not_created_twice(store, monkeypatch):
    """Even for a trial this driver's searcher created, a failed creation means a search."""
    from sweeps.config import live

    client, exp, parent, uri = store
    monkeypatch.setattr(live.LIVE, "created", {"new"})
    callback = MLflowTracking(uri, exp, parent, background=False)
    late = LateAnswer(MlflowClient(uri))
    callback.writer._client = late
    trial = FakeTrial("new")
    callback.on_trial_start(0, [], trial)  # the run exists; the writer does not know it
    callback.on_trial_result(0, [], trial, {"step": 10, "train/loss": 5.0})
    (run,) = children(client, exp)
    assert late.calls["search_runs"] == 1 and late.calls["create_run"] == 1
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [10]


def test_a_writer_pickled_by_an_older_version_records_trials_after_a_resume(store, tmp_path):
    """Tune restores the writer a sweep's first driver pickled, maybe with an older version of
    this code, whose state lacks fields added since: the process's own fields start afresh."""
    from sweeps.tracking.writer import MLflowWriter

    client, exp, parent, uri = store
    first = MLflowWriter(uri, exp, parent, background=False)
    persistent = {k: v for k, v in first.__getstate__().items() if not k.startswith("_")}
    # as the version before the curve bookkeeping pickled it
    older = {**persistent, "_followed": False, "_client": None, "_synced": set(),
             "_checkpoints": {}, "_lock": None, "_spool": None, "_thread": None}  # fmt: skip
    restored = MLflowWriter.__new__(MLflowWriter)
    restored.__setstate__(older)
    callback = MLflowTracking(uri, exp, parent, background=False)
    callback.writer = restored
    trial = FakeTrial("after")
    callback.on_trial_start(0, [], trial)
    callback.on_trial_result(0, [], trial, {"step": 10, "train/loss": 90.0})
    trial.checkpoint = _history_checkpoint(tmp_path / "ckpt", (10,))
    trial.last_result = {"step": 10, "final": 1.0, "metric.mig": 0.5, "recon_nll": 80.0}
    callback.on_trial_result(0, [], trial, trial.last_result)
    callback.on_trial_complete(0, [], trial)
    (run,) = children(client, exp)
    assert run.info.status == "FINISHED" and run.data.metrics["metric.mig"] == 0.5


def test_ending_a_trial_waits_for_the_server_then_gives_up_loudly(store):
    _, exp, parent, uri = store
    callback = MLflowTracking(
        uri, exp, parent, patience_s=2.0, retry_every_s=0.01, background=False
    )
    outage = Outage(MlflowClient(uri))
    callback.writer._client = outage
    trial = FakeTrial("gone", last_result={"step": 10, "error": "diverged: nan"})
    outage.down = True
    with pytest.raises(ConnectionError):
        callback.on_trial_complete(0, [], trial)
    assert outage.failed >= 3  # retried, not dropped at the first failure
