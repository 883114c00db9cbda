"""A driver session's Tune snapshot files: the newest of each kind kept, the older deleted."""

from __future__ import annotations

import json

import pyarrow.fs

from sweeps.driver.snapshot import prune_old_snapshots

SESSIONS = ["2026-12-01_10-00-00", "2026-12-01_11-30-00", "2026-12-02_09-15-00"]
KINDS = ["experiment_state-{}.json", "searcher-state-{}.pkl", "callback-states-{}.pkl"]


def test_each_kind_keeps_its_newest_session_and_nothing_else_is_touched(tmp_path):
    for session in SESSIONS:
        for kind in KINDS:
            (tmp_path / kind.format(session)).write_text(session)
    (tmp_path / "search_gen_state-2026-12-01_10-00-00.json").write_text("only one: kept")
    others = ["tuner.pkl", "optuna.journal", "sweep.json", "summary.json"]
    for name in others:
        (tmp_path / name).write_text("x")
    trial = tmp_path / "trial_0001"
    (trial / "checkpoint_000000").mkdir(parents=True)
    (trial / "experiment_state-2020-01-01_00-00-00.json").write_text("not a snapshot")

    deleted = prune_old_snapshots(pyarrow.fs.LocalFileSystem(), str(tmp_path))

    assert sorted(deleted) == sorted(k.format(s) for s in SESSIONS[:2] for k in KINDS)
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    newest = [k.format(SESSIONS[-1]) for k in KINDS]
    assert left == sorted([*newest, "search_gen_state-2026-12-01_10-00-00.json", *others])
    assert (trial / "experiment_state-2020-01-01_00-00-00.json").exists()
    assert prune_old_snapshots(pyarrow.fs.LocalFileSystem(), str(tmp_path)) == []


class _Remembering:
    """A base searcher whose saved state is a file (as ours is)."""

    def __new__(cls):
        from ray.tune.search import Searcher

        class Base(Searcher):
            def suggest(self, trial_id):
                return {}

            def on_trial_complete(self, trial_id, result=None, error=False):
                pass

            def save(self, checkpoint_path):
                open(checkpoint_path, "w").close()

            def restore(self, checkpoint_path):
                pass

        return Base(metric="m", mode="max")


def _generator(live: set[str], counter: int):
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    generator = SearchGenerator(ConcurrencyLimiter(_Remembering(), max_concurrent=2))
    generator.set_state(
        {"counter": counter, "total_samples": 4, "finished": False, "experiment": None}
    )
    generator.searcher.live_trials = set(live)
    generator.searcher.num_unfinished_live_trials = len(live)
    return generator


def _snapshot(*trial_ids: str) -> dict:
    return {"trial_data": [(json.dumps({"trial_id": t}), "{}") for t in trial_ids]}


def test_a_generator_that_counted_trials_the_snapshot_lacks_starts_them_again(tmp_path):
    """A driver killed between Tune's snapshot (trials a, b) and the generator's state written
    after it (which had counted and started c): restored as written, Tune would stop one trial
    short of ``--num-samples`` and keep a concurrency slot for c for ever. Aligned, the restored
    generator counts two trials, has two to go and both slots of the limit are for a and b."""
    from sweeps.driver.snapshot import align_search_state

    fs = pyarrow.fs.LocalFileSystem()
    _generator({"a"}, 1).save_to_dir(str(tmp_path), "2026-12-01_10-00-00")  # an older session
    _generator({"b", "c"}, 3).save_to_dir(str(tmp_path), "2026-12-02_09-15-00")

    changed = align_search_state(fs, str(tmp_path), _snapshot("a", "b"))

    assert changed == ["its trial count 3 → 2", "ConcurrencyLimiter lets go of c"]
    restored = _generator(set(), 0)
    restored.restore_from_dir(str(tmp_path))
    assert (restored.get_state()["counter"], restored.is_finished()) == (2, False)
    assert restored.searcher.live_trials == {"b"}
    assert restored.searcher.num_unfinished_live_trials == 1
    assert not list(tmp_path.glob(".aligned-*"))
    assert align_search_state(fs, str(tmp_path), _snapshot("a", "b")) == []  # agreed now


def test_a_generator_that_agrees_with_the_snapshot_is_left_as_it_is(tmp_path):
    from sweeps.driver.snapshot import align_search_state

    _generator({"a", "b"}, 2).save_to_dir(str(tmp_path), "2026-12-02_09-15-00")
    (state,) = tmp_path.glob("search_gen_state-*")
    before = state.read_bytes()

    assert (
        align_search_state(pyarrow.fs.LocalFileSystem(), str(tmp_path), _snapshot("a", "b")) == []
    )
    assert state.read_bytes() == before


def test_a_mend_that_fails_says_so_and_the_others_still_run(monkeypatch, capsys):
    """A generator state this cannot read must not keep the trials a killed driver started
    after the snapshot from being ended (or counted)."""
    from sweeps.driver import tuner

    class Folder:
        def filesystem(self):
            return pyarrow.fs.LocalFileSystem(), "/nowhere"

    told = []

    def unreadable(*args):
        raise ValueError("pickle data was truncated")

    monkeypatch.setattr(tuner, "newest_snapshot", lambda fs, path: _snapshot("a"))
    monkeypatch.setattr(tuner, "restore_named_checkpoints", lambda fs, path, snapshot: [])
    monkeypatch.setattr(tuner, "align_search_state", unreadable)
    monkeypatch.setattr(tuner, "tell_or_fail", lambda s, f, snapshot: told.append(snapshot))

    tuner.mend_before_restore(None, Folder())

    assert told == [_snapshot("a")]
    assert "Tune's search generator was not checked against its snapshot (ValueError: pickle " \
           "data was truncated)" in capsys.readouterr().err  # fmt: skip
