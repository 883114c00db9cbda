"""The MLflow writer's queue and its background thread: order kept, memory bounded, Tune's
loop never waits on MLflow."""

from __future__ import annotations

import threading
import time

from sweeps.tracking.spool import Spool


def test_records_come_out_in_order_and_overflow_to_the_file(tmp_path):
    spool = Spool(tmp_path / "s.jsonl", memory_limit=3)
    for i in range(10):
        spool.put({"i": i})
    assert (tmp_path / "s.jsonl").read_text().count("\n") == 7  # 3 in memory, 7 on disk
    got = [spool.get(timeout=0)["i"] for _ in range(5)]
    spool.put({"i": 10})  # while the file is not drained, new records queue behind it
    got += [spool.get(timeout=0)["i"] for _ in range(6)]
    assert got == list(range(11)) and len(spool) == 0
    assert not (tmp_path / "s.jsonl").exists()  # caught up: the file is gone
    assert spool.get(timeout=0) is None and spool.spilled == 8


def test_join_waits_for_every_record_to_be_handled(tmp_path):
    spool = Spool(tmp_path / "s.jsonl", memory_limit=2)
    handled = []

    def worker():
        while len(handled) < 5:
            record = spool.get(timeout=5)
            time.sleep(0.01)
            handled.append(record["i"])
            spool.done()

    thread = threading.Thread(target=worker)
    thread.start()
    for i in range(5):
        spool.put({"i": i})
    assert spool.join(timeout=10)
    assert handled == [0, 1, 2, 3, 4]
    thread.join()
    assert Spool(tmp_path / "t.jsonl").join(timeout=0.01) is not False  # nothing put: done


def test_a_hung_tracking_server_does_not_block_the_callback(tmp_path):
    """Every MLflow call hangs; the callback's hooks still return at once, and once the
    server answers the writer catches up in order."""
    from dataclasses import dataclass, field

    from mlflow.tracking import MlflowClient

    from sweeps.tracking.callback import MLflowTracking
    from sweeps.tracking.runs import experiment_id, parent_run

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    exp = experiment_id(client, "hang")
    parent = parent_run(client, exp, "/sweeps/hang", run_name="hang", tags={}, params={})
    gate = threading.Event()

    class Hung:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            method = getattr(self.inner, name)

            def call(*args, **kwargs):
                gate.wait()  # a server that accepts and never answers, until it does
                return method(*args, **kwargs)

            return call

    @dataclass
    class Trial:
        trial_id: str
        config: dict = field(
            default_factory=lambda: {
                "objective": "beta",
                "beta": 4.0,
                "latent_dim": 6,
                "seed": 0,
                "steps": 40,
            }
        )
        last_result: dict = field(default_factory=dict)
        checkpoint: object = None
        status: str = "TERMINATED"

        def __str__(self):
            return f"b4-{self.trial_id}"

    callback = MLflowTracking(uri, exp, parent, spool_path=tmp_path / "spool.jsonl")
    callback.writer._client = Hung(MlflowClient(uri))
    trial = Trial("t1")

    def tune_loop() -> None:
        callback.on_trial_start(0, [trial], trial)
        for step in range(10, 2010, 10):  # 200 curve points
            callback.on_trial_result(0, [trial], trial, {"step": step, "train/loss": 1.0 / step})
        trial.last_result = {"step": 2000, "final": 1.0, "recon_nll": 90.0, "metric.mig": 0.2}
        callback.on_trial_result(0, [trial], trial, trial.last_result)
        callback.on_trial_complete(0, [trial], trial)

    loop = threading.Thread(target=tune_loop, daemon=True)
    loop.start()
    loop.join(timeout=120)  # MLflow answers nothing until the gate opens: no call may wait
    assert not loop.is_alive(), "Tune's loop waited on the hung MLflow server"
    assert callback.writer.pending() > 150
    gate.set()
    callback.on_experiment_end([trial])  # waits for the writer
    (run,) = [r for r in client.search_runs([exp]) if r.info.run_id != parent]
    assert run.info.status == "FINISHED" and run.data.metrics["metric.mig"] == 0.2
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(10, 2010, 10))


def test_a_torn_line_in_the_overflow_file_is_dropped_and_the_rest_goes_on(tmp_path):
    """A line of the file cut short (a full disk) comes out as an unreadable record; the
    writer's thread drops it and keeps draining, so the final flush still ends."""
    from sweeps.tracking.spool import UNREADABLE

    spool = Spool(tmp_path / "s.jsonl", memory_limit=1)
    for i in range(3):
        spool.put({"i": i})
    text = (tmp_path / "s.jsonl").read_text().splitlines()
    (tmp_path / "s.jsonl").write_text(text[0][:4] + "\n" + text[1] + "\n")  # record 1 torn
    got = [spool.get(timeout=1) for _ in range(3)]
    assert got[0] == {"i": 0} and got[1]["op"] == UNREADABLE and got[2] == {"i": 2}


def test_an_overflow_file_that_cannot_be_read_costs_its_records_not_the_queue(tmp_path):
    """The overflow file deleted or unreadable (a cleaned /tmp, a disk error): its records come
    out as one unreadable record, the queue goes on, and ``join`` still ends."""
    from sweeps.tracking.spool import UNREADABLE

    spool = Spool(tmp_path / "s.jsonl", memory_limit=1)
    for i in range(4):
        spool.put({"i": i})
    (tmp_path / "s.jsonl").unlink()  # records 1 to 3 were there
    assert spool.get(timeout=1) == {"i": 0}
    spool.done()
    lost = spool.get(timeout=1)
    assert lost["op"] == UNREADABLE and lost["line"].startswith("3 record(s) lost")
    spool.done()
    assert len(spool) == 0 and spool.join(timeout=1)
    spool.put({"i": 4})  # a new overflow starts afresh
    assert spool.get(timeout=1) == {"i": 4}


def test_the_writer_thread_outlives_a_queue_that_raises(tmp_path, monkeypatch, caplog):
    """Whatever reading the queue raises, the writer's thread logs it and keeps draining: the
    final flush does not wait on a dead thread."""
    from sweeps.tracking.writer import MLflowWriter

    writer = MLflowWriter("sqlite:///unused.db", "0", "parent", spool_path=tmp_path / "s.jsonl")
    handled: list[dict] = []
    monkeypatch.setattr(writer, "_handle", lambda record, **kw: handled.append(record))
    original, calls = Spool.get, []

    def get_failing_once(self, timeout=None):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk error")
        return original(self, timeout)

    monkeypatch.setattr(Spool, "get", get_failing_once)
    writer.submit({"op": "result", "trial_id": "t", "name": "t"})
    assert writer.flush(timeout=30)
    assert handled == [{"op": "result", "trial_id": "t", "name": "t"}]
    assert "the MLflow spool could not be read" in caplog.text


def test_the_final_flush_ends_at_its_deadline_without_a_signal(tmp_path, monkeypatch):
    """MLflow never takes the queued records and no signal comes: the end of the sweep waits
    the writer's patience plus a minute, then gives up (here a patience that leaves 2 s)."""
    from sweeps.config import live
    from sweeps.tracking.callback import MLflowTracking

    monkeypatch.setattr(live, "LIVE", live.Live())
    callback = MLflowTracking("sqlite:///unused.db", "0", "parent", background=False)
    monkeypatch.setattr(callback.writer, "flush", lambda timeout=None: time.sleep(0.1) or False)
    callback.writer.patience_s = -58.0  # + 60 s: a 2 s deadline
    started = time.monotonic()
    assert callback._flush() is False
    assert 1.5 < time.monotonic() - started < 30


def test_the_final_flush_ends_when_a_signal_comes_while_it_waits(tmp_path, monkeypatch):
    """MLflow never takes the queued records: the end of the sweep stops waiting as soon as a
    SIGTERM arrives (``ray job stop`` gives the driver seconds, not the writer's patience)."""
    from sweeps.config import live
    from sweeps.tracking.callback import MLflowTracking

    monkeypatch.setattr(live, "LIVE", live.Live())
    callback = MLflowTracking("sqlite:///unused.db", "0", "parent", background=False)
    monkeypatch.setattr(callback.writer, "flush", lambda timeout=None: False)  # hung for ever
    ended: list[bool] = []
    flush = threading.Thread(target=lambda: ended.append(callback._flush()), daemon=True)
    flush.start()
    flush.join(timeout=0.5)
    assert flush.is_alive()  # waiting for MLflow, which never takes the records
    live.LIVE.signal = "SIGTERM"
    flush.join(timeout=120)
    assert not flush.is_alive() and ended == [False]  # ended by the signal, not by patience
