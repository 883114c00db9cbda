"""The sweep folder (``sweeps.store.SweepFolder``): one object per run that knows local from
remote, and writes a file whole or not at all."""

from __future__ import annotations

import os

import pytest

from sweeps.store import SweepFolder


def test_a_write_that_fails_midway_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    folder = SweepFolder(str(tmp_path), "sweep")
    folder.write_text("sweep.json", '{"search": {"steps": 1200}}')

    def crash(*args, **kwargs):  # the driver dies between writing and renaming
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        folder.write_text("sweep.json", '{"search": {"steps": 99')
    assert folder.read_text("sweep.json") == '{"search": {"steps": 1200}}'
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir()) == ["sweep.json"]


def test_where_the_study_lives_locally_and_remotely(tmp_path):
    local = SweepFolder(str(tmp_path), "s")
    assert local.study_location == str(tmp_path / "s" / "optuna.journal")
    assert local.study_path == tmp_path / "s" / "optuna.journal"
    options = "?endpoint_override=127.0.0.1:9000&scheme=http"
    remote = SweepFolder(f"s3://KEY:SECRET@bucket/sweeps{options}", "s")
    assert remote.study_location == f"s3://bucket/sweeps/s/optuna.journal.d{options}"
    assert "SECRET" not in str(remote.study_path) and remote.study_path.name == "optuna.journal"
