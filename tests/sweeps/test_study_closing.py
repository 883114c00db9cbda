"""Closing a sweep's Optuna trials from outside the searcher (``sweeps.search.study``): results
told, trials Tune never held failed as lost, and the journal replayed once for all of it."""

from __future__ import annotations

import optuna
import pytest

from analysis.schema import LOST_ATTR, TUNE_TRIAL_ATTR
from sweeps.search import study as study_module
from sweeps.search.study import (
    LOST_REASON,
    fail_unplaced_trials,
    one_replay,
    open_journal,
    running_tune_trials,
    tell_unreported,
)


@pytest.fixture
def journal(tmp_path):
    path = str(tmp_path / "optuna.journal")
    study = optuna.create_study(study_name="s", storage=open_journal(path), direction="maximize")
    for tune_trial in ("a", "b", "c"):
        trial = study.ask()
        trial.suggest_int("latent_dim", 4, 8)
        trial.set_user_attr(TUNE_TRIAL_ATTR, tune_trial)
    return path


@pytest.mark.parametrize("shared", [True, False])
def test_closing_tells_fails_and_replays_the_journal_once(journal, monkeypatch, shared):
    opened = []
    real = study_module.open_journal
    monkeypatch.setattr(study_module, "open_journal", lambda j: opened.append(j) or real(j))
    final = {"metric.mig": 0.5, "recon_nll": 10.0, "final": 1.0}
    with one_replay() if shared else _nothing():
        assert tell_unreported(journal, "s", {"a": final}, ["metric.mig"], 100.0) == 1
        assert fail_unplaced_trials(journal, "s", {"a", "b"}, LOST_REASON) == ["c"]
        assert running_tune_trials(journal, "s") == ["b"]  # sees what the others wrote
    assert len(opened) == (1 if shared else 3)

    trials = optuna.load_study(study_name="s", storage=real(journal)).trials
    by_tune = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in trials}
    assert by_tune["a"].state == optuna.trial.TrialState.COMPLETE and by_tune["a"].value == 0.5
    assert by_tune["b"].state == optuna.trial.TrialState.RUNNING
    lost = by_tune["c"]
    assert lost.state == optuna.trial.TrialState.FAIL
    assert lost.user_attrs[LOST_ATTR] is True and lost.user_attrs["error"] == LOST_REASON


def _nothing():
    import contextlib

    return contextlib.nullcontext()
