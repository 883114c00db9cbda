"""The Optuna journal of a sweep on remote storage is in the bucket after every change
(``sweeps.store.journal``, ``sweeps.search.study.MirroredJournal``), and a machine without its
local copy (a fresh HOME) rebuilds it from there: the study it opens is the one written."""

from __future__ import annotations

import pickle

import optuna
import pytest
from sweep_support import BUCKET, CREDENTIALS

from sweeps.search.study import open_journal
from sweeps.store import journal as journal_module
from sweeps.store.journal import JournalMirror, mirror_for

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def remote(s3_endpoint, tmp_path, monkeypatch):
    """The journal objects' folder in the local S3 endpoint, a HOME of the test's own, and no
    mirror left from another test."""
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home-1"))
    monkeypatch.setattr(journal_module, "_MIRRORS", {})
    return f"s3://{BUCKET}/{tmp_path.name}/sweep/optuna.journal.d?endpoint_override={s3_endpoint}&scheme=http"


def a_new_machine(monkeypatch, tmp_path, name: str) -> None:
    """Another HOME and a new process's mirrors."""
    monkeypatch.setenv("HOME", str(tmp_path / name))
    monkeypatch.setattr(journal_module, "_MIRRORS", {})


def test_every_change_is_in_the_bucket_and_a_fresh_home_rebuilds_the_study(
    remote, tmp_path, monkeypatch
):
    study = optuna.create_study(study_name="s", storage=open_journal(remote))
    trial = study.ask()
    trial.suggest_float("beta", 1.0, 32.0, log=True)
    trial.set_user_attr("tune_trial_id", "t0")
    mirror = mirror_for(remote)
    assert mirror.remote_size() == mirror.local.stat().st_size  # nothing only on this machine
    study.tell(trial, 0.25)
    running = study.ask()
    running.set_user_attr("tune_trial_id", "t1")
    written = mirror.local.read_bytes()

    a_new_machine(monkeypatch, tmp_path, "home-2")  # the first machine is gone
    assert not mirror_for(remote).local.exists()
    again = optuna.load_study(study_name="s", storage=open_journal(remote))
    assert mirror_for(remote).local.read_bytes() == written
    states = [(t.state, t.value, t.user_attrs["tune_trial_id"]) for t in again.trials]
    assert states == [
        (optuna.trial.TrialState.COMPLETE, 0.25, "t0"),
        (optuna.trial.TrialState.RUNNING, None, "t1"),
    ]
    assert again.ask().number == 2  # a new trial takes the next number, none is reused


def test_a_pickled_journal_opens_the_copy_of_whoever_unpickles_it(remote, tmp_path, monkeypatch):
    storage = open_journal(remote)
    optuna.create_study(study_name="p", storage=storage).ask()
    blob = pickle.dumps(storage)  # as Tune pickles the searcher with its storage
    a_new_machine(monkeypatch, tmp_path, "home-3")
    restored = pickle.loads(blob)
    assert str(tmp_path / "home-3") in str(mirror_for(remote).local)
    study = optuna.load_study(study_name="p", storage=restored)
    assert [t.number for t in study.trials] == [0]


def test_sync_writes_whole_lines_and_a_retry_rewrites_its_own_object(remote):
    mirror = JournalMirror(remote)
    mirror.local.parent.mkdir(parents=True)
    mirror.local.write_bytes(b'{"a":1}\n{"b":')  # a line being written
    mirror.synced = 0
    assert mirror.sync() == len(b'{"a":1}\n')
    mirror.local.write_bytes(b'{"a":1}\n{"b":2}\n')
    mirror.synced = 0  # the first PUT's answer was lost: the same object again, longer
    assert mirror.sync() == 16
    assert mirror.remote_size() == 16
    assert len(mirror._objects()) == 1
