"""UDR in a sweep: a setting's finished seeds scored against each other (Duan et al., 2020).

Each trial leaves its codes of the sweep's UDR inputs and its per-latent KL in
``STORAGE/NAME/udr_codes/TRIAL_ID.npz`` (``sweeps.trial.trainable.save_udr_codes``). When a
trial finishes, its setting is scored: every seed of the setting that has finished, against the
others (``betavae.metrics.setting_udr``: a seed without an active latent scores 0).

- A finished trial waits, open (RUNNING) in Optuna with its reconstruction constraint set,
  until its setting has two finished seeds with active latents; then every waiting seed of the
  setting is told its score. A seed finishing later is told its score against all the
  setting's finished seeds. Optuna keeps the value each seed was told (it cannot change a
  finished trial); MLflow's ``metric.udr`` of every seed of the setting moves as seeds finish
  (one step per number of seeds scored), and the report scores each setting over all of them.
- At the sweep's end a trial still waiting (its setting's other seeds never finished, or none
  had an active latent) ends FAIL with the reason (``fail_waiting``), unless a seed of its
  setting ended in ERROR (``--resume`` retries that one, and its end scores the setting). The
  scores told then reach MLflow from the sweep's end (``sweeps.driver.end``).
"""

from __future__ import annotations

import logging
from typing import Any

import optuna
from optuna.trial import TrialState

from analysis.schema import TUNE_TRIAL_ATTR, UDR_SEEDS_KEY
from analysis.trial_files import UDR_CODES_DIR, UDR_CODES_SUFFIX, read_udr_codes
from betavae.catalogue import PRIMARY_KEY
from sweeps.store.uri import open_uri, under

logger = logging.getLogger(__name__)
WAITING_ATTR = "udr_waiting"
UDR_KEY = PRIMARY_KEY["udr"]
SEEDS_KEY = UDR_SEEDS_KEY
NOT_ENOUGH = (
    "UDR needs two finished seeds of its setting with active latents and readable codes "
    "(udr_codes/TRIAL_ID.npz); it had fewer"
)


class SettingUDR:
    """Scores a sweep's settings from the codes its trials left on the sweep's storage.

    ``sweep_dir``: the sweep's folder (``SweepFolder.shown``: no credentials; the storage's
    come from the environment). Picklable: holds the location only; the index of each
    setting's trials (so that a trial's end does not walk the whole study) is rebuilt from the
    study on first use.
    """

    def __init__(self, sweep_dir: str, correlation: str = "lasso") -> None:
        self.sweep_dir = sweep_dir
        self.correlation = correlation
        self._members: dict[frozenset, set[int]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_members": None}

    def codes(self, tune_trial_id: str | None) -> tuple[Any, Any] | None:
        """``(codes, kl)`` the trial left; None when there are none (or they cannot be read)."""
        if not tune_trial_id:
            return None
        name = f"{UDR_CODES_DIR}/{tune_trial_id}{UDR_CODES_SUFFIX}"
        try:
            fs, path = open_uri(under(self.sweep_dir, name))
            with fs.open_input_stream(path) as f:
                return read_udr_codes(f.read())
        except Exception as err:  # missing or torn: that seed cannot be scored
            logger.warning("UDR codes of trial %s not read (%s)", tune_trial_id, err)
            return None

    def score(self, seeds: list[str]) -> dict[str, dict]:
        """Tune trial id → ``{UDR_KEY, SEEDS_KEY}`` of one setting's finished ``seeds`` scored
        against each other (those with codes); raises ``ValueError`` on codes UDR refuses."""
        from betavae.metrics import setting_udr

        present = [(seed, codes) for seed in seeds if (codes := self.codes(seed)) is not None]
        if not present:
            return {}
        scores = setting_udr(
            [codes for _, (codes, _) in present],
            [kl for _, (_, kl) in present],
            correlation=self.correlation,  # type: ignore[arg-type]
        )
        return {
            seed: {UDR_KEY: score, SEEDS_KEY: len(present)}
            for (seed, _), score in zip(present, scores, strict=True)
            if score is not None
        }

    def _setting(self, study: optuna.Study, storage: Any, params: dict, number: int | None):
        """The frozen trials of the setting ``params`` (``number``: a trial of it just ended)."""
        key = frozenset(params.items())
        if self._members is None:
            self._members = {}
            for t in study.get_trials(deepcopy=False):
                self._members.setdefault(frozenset(t.params.items()), set()).add(t.number)
        numbers = self._members.setdefault(key, set())
        if number is not None:
            numbers.add(number)
        study_id = storage.get_study_id_from_name(study.study_name)
        return [
            storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, n))
            for n in sorted(numbers)
        ]

    def tell_setting(
        self, study: optuna.Study, storage: Any, params: dict[str, Any], number: int | None = None
    ) -> dict[str, dict]:
        """Score the setting ``params`` over its finished seeds (COMPLETE, or RUNNING and
        waiting) and tell every waiting seed that has a score; a waiting seed whose codes UDR
        refuses ends FAIL with the reason. ``number``: the trial of the setting that just ended.
        Returns Tune trial id → ``{UDR_KEY, SEEDS_KEY}`` of every seed scored."""
        seeds = [
            t
            for t in self._setting(study, storage, params, number)
            if t.params == params
            and (
                t.state == TrialState.COMPLETE
                or (t.state == TrialState.RUNNING and t.user_attrs.get(WAITING_ATTR))
            )
        ]
        waiting = [t for t in seeds if t.state == TrialState.RUNNING]
        try:
            scored = self.score([t.user_attrs.get(TUNE_TRIAL_ATTR) for t in seeds])
        except ValueError as err:  # codes UDR refuses (NaN, a single point)
            for seed in waiting:
                _fail(study, storage, seed.number, f"UDR could not score its setting: {err}")
            return {}
        for seed in waiting:
            result = scored.get(seed.user_attrs.get(TUNE_TRIAL_ATTR))
            if result is not None:
                study.tell(seed.number, [result[UDR_KEY]])
        return scored


def wait_for_setting(trial: optuna.Trial) -> None:
    """Mark a finished trial as waiting for its setting's UDR (it stays RUNNING)."""
    trial.set_user_attr(WAITING_ATTR, True)


def fail_waiting(study: optuna.Study, storage: Any) -> int:
    """End FAIL every trial still waiting for its setting's UDR, except where a seed of the
    setting is still open without waiting (it ended in ERROR: ``--resume`` retries it, and its
    end scores the setting). Returns how many."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    retried = {frozenset(t.params.items()) for t in running if not t.user_attrs.get(WAITING_ATTR)}
    waiting = [
        t.number
        for t in running
        if t.user_attrs.get(WAITING_ATTR) and frozenset(t.params.items()) not in retried
    ]
    for number in waiting:
        _fail(study, storage, number, NOT_ENOUGH)
    return len(waiting)


def _fail(study: optuna.Study, storage: Any, number: int, reason: str) -> None:
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    storage.set_trial_user_attr(trial_id, "error", reason)
    study.tell(number, state=TrialState.FAIL)
