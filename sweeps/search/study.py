"""The sweep's Optuna study reached from outside the searcher: a trial's MLflow run written into
its Optuna trial (``StudyLink``, called by the MLflow writer), and, after Tune returns, the
results of trials Tune did not report to the searcher and the reasons of trials left in ERROR.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from analysis.schema import MLFLOW_RUN_ATTR, TUNE_TRIAL_ATTR
from sweeps.search.searcher import tell_result


def open_journal(journal: str):
    """The Optuna storage of the journal file at ``journal``."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(journal))


def tell_unreported(
    journal: str, study_name: str, finished: dict[str, dict], metrics: list[str], budget: float
) -> int:
    """Tell the results of trials Tune finished whose Optuna trials are still open (``finished``:
    Tune trial id → final result): a trial retried by ``--resume`` after it ended in ERROR is
    not reported to the searcher by Tune (its concurrency limiter forgot it). Returns how many."""
    storage = open_journal(journal)
    study = optuna.load_study(study_name=study_name, storage=storage)
    study_id = storage.get_study_id_from_name(study_name)
    told = 0
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        result = finished.get(frozen.user_attrs.get(TUNE_TRIAL_ATTR))
        if result is not None:
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
            tell_result(study, optuna.Trial(study, trial_id), result, metrics, budget)
            told += 1
    return told


def note_errored_trials(journal: str, study_name: str, errored: dict[str, str]) -> None:
    """Write the reason into the Optuna trials of trials Tune ended in ERROR (``errored``: Tune
    trial id → reason). They stay open (RUNNING): Optuna cannot reopen a finished trial, and
    ``--resume`` retries them and tells their result; MLflow shows them FAILED meanwhile."""
    storage = open_journal(journal)
    study = optuna.load_study(study_name=study_name, storage=storage)
    study_id = storage.get_study_id_from_name(study_name)
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = errored.get(frozen.user_attrs.get(TUNE_TRIAL_ATTR))
        if reason is not None:
            number = storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number)
            storage.set_trial_user_attr(number, "error", f"{reason[:400]} (--resume retries it)")


class StudyLink:
    """Writes a trial's MLflow run id into its Optuna trial (``user_attrs``), from the driver.

    Picklable (it travels with the tracking callback in Tune's experiment state): the study is
    opened on first use.
    """

    def __init__(self, journal: str, study_name: str) -> None:
        self.journal = journal
        self.study_name = study_name
        self._storage: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_storage": None}

    def __call__(self, trial_number: int, run_id: str) -> None:
        if self._storage is None:
            self._storage = open_journal(self.journal)
        study_id = self._storage.get_study_id_from_name(self.study_name)
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)
        self._storage.set_trial_user_attr(trial_id, MLFLOW_RUN_ATTR, run_id)
