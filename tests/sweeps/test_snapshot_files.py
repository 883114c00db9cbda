"""A driver session's Tune snapshot files: the newest of each kind kept, the older deleted."""

from __future__ import annotations

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
