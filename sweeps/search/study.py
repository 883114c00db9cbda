"""The sweep's Optuna study: its journal (a local file, or mirrored to remote storage after
every change), reached from outside the searcher too: a trial's MLflow run written into its
Optuna trial (``StudyLink``, called by the MLflow writer), and, after Tune returns, the results
of trials Tune did not report to the searcher and the reasons of trials left in ERROR.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend
from optuna.trial import TrialState

from analysis.schema import LOST_ATTR, MLFLOW_RUN_ATTR, TUNE_TRIAL_ATTR
from sweeps.config import live
from sweeps.search.searcher import record_recon, tell_result
from sweeps.search.udr import fail_waiting, wait_for_setting
from sweeps.store.journal import mirror_for

logger = logging.getLogger(__name__)


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


#: The storages ``_open_trials`` shares inside ``one_replay`` (journal → storage).
_SHARED: dict[str, JournalStorage] | None = None


@contextlib.contextmanager
def one_replay() -> Iterator[None]:
    """Inside the block the functions below open each journal once: opening one replays the
    whole journal (~1.7 s at 10,000 trials), and the end of a sweep calls several in a row. A
    shared storage reads what another wrote to the file since, before each read."""
    global _SHARED
    outer, _SHARED = _SHARED, ({} if _SHARED is None else _SHARED)
    try:
        yield
    finally:
        _SHARED = outer


def _open_trials(journal: str, study_name: str):
    """``(study, storage, [(storage trial id, Tune trial id), …])`` of the study's RUNNING
    trials: the ones the end of a sweep may still have to close."""
    storage = None if _SHARED is None else _SHARED.get(str(journal))
    if storage is None:
        storage = open_journal(journal)
        if _SHARED is not None:
            _SHARED[str(journal)] = storage
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


def running_tune_trials(journal: str, study_name: str) -> list[str]:
    """The Tune trial ids of the study's RUNNING trials."""
    return [tune_trial for _, tune_trial in _open_trials(journal, study_name)[2]]


def tell_unreported(
    journal: str,
    study_name: str,
    finished: dict[str, dict],
    metrics: list[str],
    budget: float,
    udr: Any = None,
) -> int:
    """Tell the results of trials Tune finished whose Optuna trials are still open (``finished``:
    Tune trial id → final result): a trial retried by ``--resume`` after it ended in ERROR is
    not reported to the searcher by Tune (its concurrency limiter forgot it). With ``udr`` (a
    ``sweeps.search.udr.SettingUDR``) their settings are scored, the scores published for the
    sweep's end to log (``sweeps.config.live``). Returns how many were told."""
    study, storage, running = _open_trials(journal, study_name)
    told, settings = 0, []
    for trial_id, tune_trial in running:
        result = finished.get(tune_trial)
        if result is None:
            continue
        trial = optuna.Trial(study, trial_id)
        if udr is not None and not result.get("error"):
            record_recon(trial, result, budget)
            wait_for_setting(trial)
            if trial.params not in settings:
                settings.append(trial.params)
            continue
        tell_result(study, trial, result, metrics, budget)
        told += 1
    for params in settings:
        scored = udr.tell_setting(study, storage, params)
        live.publish_scores(scored)
        told += len(scored)
    return told


def fail_lone_seeds(journal: str, study_name: str) -> int:
    """End FAIL the trials still waiting for their setting's UDR (``sweeps.search.udr``), once
    the sweep has ended. Returns how many."""
    study, storage, _ = _open_trials(journal, study_name)
    return fail_waiting(study, storage)


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

    Optuna refuses to change a finished trial, so a run created after its trial ended (the
    MLflow writer a whole trial behind: trials of a second, a slow server) is not linked from
    Optuna's side; the trial still names its Tune trial (``tune_trial_id``), and the run its
    Optuna trial (tag ``optuna.trial_number``). Said once per driver, in one warning.

    Picklable (it travels with the tracking callback in Tune's experiment state): the study is
    opened on first use.
    """

    def __init__(self, journal: str, study_name: str) -> None:
        self.journal = journal
        self.study_name = study_name
        self._storage: Any = None
        self.too_late = 0

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_storage": None, "too_late": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({"too_late": 0, **state})  # pickled before it had the count

    def __call__(self, trial_number: int, run_id: str) -> bool:
        """Whether the link was written (False: the trial had already ended)."""
        if self._storage is None:
            self._storage = open_journal(self.journal)
        study_id = self._storage.get_study_id_from_name(self.study_name)
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)
        if self._storage.get_trial(trial_id).state.is_finished():
            if not self.too_late:
                logger.warning(
                    "Optuna trial %d ended before its MLflow run %s was created: it is not "
                    "linked from Optuna's side (the run names the trial in its tag "
                    "optuna.trial_number; later ones are not reported)",
                    trial_number,
                    run_id,
                )
            self.too_late += 1
            return False
        self._storage.set_trial_user_attr(trial_id, MLFLOW_RUN_ATTR, run_id)
        return True


#: Why a trial started by a killed driver after its last Tune snapshot is failed on resume.
LOST_REASON = (
    "lost: its driver was killed before Tune's snapshot recorded the trial, so Tune cannot "
    "resume it; another trial takes its place"
)


def fail_unplaced_trials(
    journal: str,
    study_name: str,
    tune_trials: set[str],
    reason: str = "never ran: the driver stopped before Tune recorded its trial",
) -> list[str]:
    """End FAIL the RUNNING Optuna trials whose Tune trial is not among ``tune_trials`` (the
    ids Tune's state knows): asked before a driver was killed, before Tune's snapshot recorded
    the trial, they never run (again). Returns their Tune trial ids."""
    _, storage, running = _open_trials(journal, study_name)
    unplaced = [(tid, tune_trial) for tid, tune_trial in running if tune_trial not in tune_trials]
    for trial_id, _ in unplaced:
        storage.set_trial_user_attr(trial_id, "error", reason)
        storage.set_trial_user_attr(trial_id, LOST_ATTR, True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return [tune_trial for _, tune_trial in unplaced]
