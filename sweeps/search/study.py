"""The sweep's Optuna study: its journal (a local file, or mirrored to remote storage after
every change), reached from outside the searcher too: a trial's MLflow run written into its
Optuna trial (``StudyLink``, called by the MLflow writer), and, after Tune returns, the results
of trials Tune did not report to the searcher and the reasons of trials left in ERROR.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend
from optuna.trial import TrialState

from analysis.schema import MLFLOW_RUN_ATTR, TUNE_TRIAL_ATTR
from sweeps.search.searcher import tell_result
from sweeps.store.journal import mirror_for


class MirroredJournal(BaseJournalBackend):
    """Optuna's journal file on this machine, each append mirrored to the sweep's remote
    storage before it returns (``sweeps.store.journal``): what the driver has told Optuna is
    in the bucket before the next trial starts. Pickled as its remote URI."""

    def __init__(self, remote: str) -> None:
        self.remote = remote
        self._mirror = mirror_for(remote)
        self._mirror.ready()  # a new machine's copy rebuilt from the bucket first
        self._mirror.local.parent.mkdir(parents=True, exist_ok=True)
        self._file = JournalFileBackend(str(self._mirror.local))

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        return self._file.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._file.append_logs(logs)
        self._mirror.sync()

    def __reduce__(self):
        return (MirroredJournal, (self.remote,))


def open_journal(journal: str | Path) -> JournalStorage:
    """The Optuna storage of a sweep's journal: ``journal`` a local file, or the URI of its
    objects' folder in remote storage (``SweepFolder.study_location``)."""
    if "://" in str(journal):
        return JournalStorage(MirroredJournal(str(journal)))
    Path(journal).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(journal)))


def _open_trials(journal: str, study_name: str):
    """``(study, storage, [(storage trial id, Tune trial id), …])`` of the study's RUNNING
    trials: the ones the end of a sweep may still have to close."""
    storage = open_journal(journal)
    study = optuna.load_study(study_name=study_name, storage=storage)
    study_id = storage.get_study_id_from_name(study_name)
    running = [
        (
            storage.get_trial_id_from_study_id_trial_number(study_id, frozen.number),
            frozen.user_attrs.get(TUNE_TRIAL_ATTR),
        )
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ]
    return study, storage, running


def tell_unreported(
    journal: str, study_name: str, finished: dict[str, dict], metrics: list[str], budget: float
) -> int:
    """Tell the results of trials Tune finished whose Optuna trials are still open (``finished``:
    Tune trial id → final result): a trial retried by ``--resume`` after it ended in ERROR is
    not reported to the searcher by Tune (its concurrency limiter forgot it). Returns how many."""
    study, _, running = _open_trials(journal, study_name)
    told = 0
    for trial_id, tune_trial in running:
        result = finished.get(tune_trial)
        if result is not None:
            tell_result(study, optuna.Trial(study, trial_id), result, metrics, budget)
            told += 1
    return told


def note_errored_trials(journal: str, study_name: str, errored: dict[str, str]) -> None:
    """Write the reason into the Optuna trials of trials Tune ended in ERROR (``errored``: Tune
    trial id → reason). They stay open (RUNNING): Optuna cannot reopen a finished trial, and
    ``--resume`` retries them and tells their result; MLflow shows them FAILED meanwhile."""
    _, storage, running = _open_trials(journal, study_name)
    for trial_id, tune_trial in running:
        reason = errored.get(tune_trial)
        if reason is not None:
            storage.set_trial_user_attr(trial_id, "error", f"{reason[:400]} (--resume retries it)")


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


def fail_unplaced_trials(journal: str, study_name: str, tune_trials: set[str]) -> int:
    """End FAIL the RUNNING Optuna trials whose Tune trial is not among ``tune_trials`` (the
    ids Tune's state knows): asked just before a driver was killed, before Tune recorded the
    trial, they would never run. Returns how many."""
    _, storage, running = _open_trials(journal, study_name)
    unplaced = [trial_id for trial_id, tune_trial in running if tune_trial not in tune_trials]
    for trial_id in unplaced:
        reason = "never ran: the driver stopped before Tune recorded its trial"
        storage.set_trial_user_attr(trial_id, "error", reason)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return len(unplaced)
