"""Optuna search for Ray Tune through public APIs: ask/tell, a real constraint, seed replicates.

A ``ray.tune.search.Searcher`` that drives an Optuna study with ``study.ask()`` and
``study.tell()``. Optuna 5 reads constraints from the trial (``Trial.set_constraint``;
feasible when every value is ≤ 0): TPE or GP, when a plan asks for them, sample around
feasible trials, and ``study.best_trial(s)`` never returns an infeasible one. Every finished
trial gets the constraint ``recon_nll − budget``; the ``pareto`` objective records it too,
so optuna-dashboard and ``study.best_trials`` see feasibility there as well.

The study is the searcher's state: each Optuna trial holds its Tune trial id in its
``user_attrs`` (and the MLflow run id, see ``sweeps.search.study.StudyLink``), so a restored
searcher rebuilds its trial map from the study itself. ``sweeps.search.study`` reaches the
study from outside the searcher (after Tune returns, and from the MLflow writer).
"""

from __future__ import annotations

import logging
import math
import pickle
import statistics
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from analysis.schema import (
    LOST_ATTR,
    OPTUNA_TRIAL_KEY,
    RECON_ATTR,
    REPLICATE_ATTR,
    TUNE_TRIAL_ATTR,
)
from sweeps.config import live
from sweeps.search.udr import wait_for_setting

logger = logging.getLogger(__name__)
CONSTRAINT = "recon_nll_over_budget"
RESEED = ("always", "near-best")  # when a setting's other seeds run (ConstrainedOptunaSearch)


class ConstrainedOptunaSearch(Searcher):
    """Optuna's sampler behind Tune's ``Searcher`` API, with the reconstruction constraint.

    Args:
        space: called on each asked ``optuna.Trial``; suggests the searched values and returns
            the constants that complete the trial's config (``sweeps.search.space.SearchSpace``).
        metric, mode: the searched metric(s) and direction(s) (lists for the Pareto search).
        sampler: the Optuna sampler.
        study_name, storage: the study (created, or loaded when it exists); in memory when
            ``storage`` is None.
        points_to_evaluate: settings run first (each with its replicates), in this order.
        recon_budget: feasible when the final ``recon_nll`` is at most this (nats).
        replicates: each newly sampled setting also runs with ``replicates − 1`` more seeds.
        reseed: when: ``"always"`` (queued right behind the setting's first seed) or
            ``"near-best"`` (queued only once the first seed has ended within the budget and
            within ``reseed_margin`` of the best setting's median so far: seeds are spent on
            settings that could be the answer; single-objective only).
        max_trials: the sweep's ``num_samples``; no replicate is queued beyond it (a queued
            trial that never runs would stay WAITING in the study).
        study_attrs: set on the study (``study.user_attrs``): the sweep's settings, the MLflow
            parent run.
        udr: when the searched metric is UDR, the scorer of a setting's finished seeds
            (``sweeps.search.udr``): a finished trial waits for its setting's score.
    """

    #: No UDR scorer: also what a searcher pickled before UDR existed restores with.
    _udr: Any = None
    #: Trials asked so far, towards ``max_trials`` (``_placed``); None: not yet counted.
    _asked: int | None = None

    def __init__(
        self,
        *,
        space: Any,
        metric: str | list[str],
        mode: str | list[str],
        sampler: optuna.samplers.BaseSampler | None = None,
        study_name: str | None = None,
        storage: optuna.storages.BaseStorage | None = None,
        points_to_evaluate: Sequence[dict[str, Any]] | None = None,
        recon_budget: float,
        replicates: int = 1,
        reseed: str = "always",
        reseed_margin: float = 0.0,
        max_trials: int | None = None,
        study_attrs: dict[str, Any] | None = None,
        udr: Any = None,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self._space = space
        self._metrics = [metric] if isinstance(metric, str) else list(metric)
        modes = [mode] if isinstance(mode, str) else list(mode)
        self._directions = ["maximize" if m == "max" else "minimize" for m in modes]
        self._recon_budget = float(recon_budget)
        self._replicates = int(replicates)
        if reseed not in RESEED or (reseed != "always" and len(self._metrics) > 1):
            raise ValueError(f"reseed: got {reseed!r}; allowed: {', '.join(RESEED)} "
                             "(near-best with one metric only)")  # fmt: skip
        self._reseed = reseed
        self._reseed_margin = float(reseed_margin)
        self._max_trials = max_trials
        self._udr = udr
        self._sampler = sampler
        self._storage = storage if storage is not None else optuna.storages.InMemoryStorage()
        self._study_name = study_name or "betavae-sweep"
        self._study: optuna.Study | None = None
        self._live: dict[str, optuna.Trial] = {}  # Tune trial id → the asked trial
        self._done: set[str] = set()
        study = self.study
        if not study.trials:  # a new study: queue the starting points once
            for point in points_to_evaluate or ():
                study.enqueue_trial(dict(point))
        for key, value in (study_attrs or {}).items():
            study.set_user_attr(key, value)

    # -- the study ---------------------------------------------------------------------------
    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = optuna.create_study(
                study_name=self._study_name,
                storage=self._storage,
                sampler=self._sampler,
                directions=self._directions,
                load_if_exists=True,
            )
            if self._study.trials and self._sampler is not None:
                # A restored searcher (Tune pickled it before its sampler drew anything): a
                # sampler left at its seed would draw the settings already tried again.
                self._sampler.reseed_rng()
        return self._study

    def __getstate__(self) -> dict[str, Any]:
        # The study and the asked trials are rebuilt from the storage after unpickling.
        return {**self.__dict__, "_study": None, "_live": {}, "_asked": None}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as out:
            pickle.dump({"done": sorted(self._done)}, out)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self._done |= set(state.get("done", ()))

    def _trial(self, trial_id: str) -> optuna.Trial | None:
        """The Optuna trial of a Tune trial: asked by this process, else found in the study."""
        if trial_id in self._live:
            return self._live[trial_id]
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.user_attrs.get(TUNE_TRIAL_ATTR) == trial_id:
                storage_id = self._storage.get_trial_id_from_study_id_trial_number(
                    self._storage.get_study_id_from_name(self._study_name), frozen.number
                )
                trial = optuna.Trial(self.study, storage_id)
                self._live[trial_id] = trial
                return trial
        return None

    # -- Tune's Searcher API -------------------------------------------------------------
    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        # The space is this searcher's own; Tune's param_space holds only constants, which
        # Tune merges into every suggested config itself.
        return True

    def _placed(self) -> int:
        """How many trials the study holds towards ``max_trials``: every one asked, less those
        lost with a killed driver (``sweeps.search.study.LOST_ATTR``: others take their place).
        Counted from the study once per process, then kept as trials are asked."""
        if self._asked is None:
            self._asked = sum(
                t.state != TrialState.WAITING
                and not (t.state == TrialState.FAIL and t.user_attrs.get(LOST_ATTR))
                for t in self.study.get_trials(deepcopy=False)
            )
        return self._asked

    def suggest(self, trial_id: str) -> dict | str | None:
        # A resumed sweep whose killed driver finished trials after its last Tune snapshot
        # holds them in the study (and MLflow) but not in Tune, which would ask for
        # ``num_samples`` on top of them: the study's count decides.
        if self._max_trials is not None and self._placed() >= self._max_trials:
            return Searcher.FINISHED
        study = self.study
        trial = study.ask()
        live.note_created(trial_id)
        self._asked = self._placed() + 1
        constants = self._space(trial)
        trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
        if REPLICATE_ATTR not in trial.user_attrs:
            trial.set_user_attr(REPLICATE_ATTR, 0)
            if self._reseed == "always":  # a fresh setting: its other seeds right behind it
                self._queue_replicates(trial.params)
        self._live[trial_id] = trial
        return {**trial.params, **constants, OPTUNA_TRIAL_KEY: trial.number}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # Intermediate results carry training curves, not the metric (it is computed once,
        # at the end); there is no pruner to feed.
        return

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._done:
            return
        trial = self._trial(trial_id)
        if trial is None:  # not this study's (or already told before a restore)
            return
        if error and not (result or {}).get("error"):
            # Tune gave up on the trial (its worker lost too often): --resume retries it, so
            # its Optuna trial stays open (note_errored_trials records why).
            return
        result = result or {}
        if self._udr is not None and not error and not result.get("error") and result.get("final"):
            record_recon(trial, result, self._recon_budget)
            wait_for_setting(trial)
            scores = self._udr.tell_setting(self.study, self._storage, trial.params, trial.number)
            live.publish_scores(scores)
        else:
            tell_result(self.study, trial, result, self._metrics, self._recon_budget, error)
        self._done.add(trial_id)
        self._live.pop(trial_id, None)
        if self._reseed == "near-best" and self._worth_reseeding(trial.number):
            self._queue_replicates(trial.params)

    # -- seeds per setting ---------------------------------------------------------------------
    def _queue_replicates(self, params: dict[str, Any]) -> None:
        """Queue a setting's other seeds (``replicates − 1``), none beyond ``max_trials``."""
        study = self.study
        room = math.inf
        if self._max_trials is not None:
            room = self._max_trials - len(study.get_trials(deepcopy=False))
        for replicate in range(1, min(self._replicates, 1 + room)):
            study.enqueue_trial(params, user_attrs={REPLICATE_ATTR: replicate})

    def _worth_reseeding(self, number: int) -> bool:
        """A setting's first seed ended within budget and within the margin of the best
        setting's median so far (a setting is within budget when all its seeds are)."""
        trials = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        this = next((t for t in trials if t.number == number), None)
        if this is None or this.user_attrs.get(REPLICATE_ATTR, 0) != 0 or not _feasible(this):
            return False
        settings: dict[tuple, list[optuna.trial.FrozenTrial]] = {}
        for t in trials:
            settings.setdefault(tuple(sorted(t.params.items())), []).append(t)
        medians = [
            statistics.median(t.values[0] for t in seeds)
            for seeds in settings.values()
            if all(_feasible(t) for t in seeds)
        ]
        return this.values[0] >= max(medians) - self._reseed_margin


def tell_result(
    study: optuna.Study,
    trial: optuna.Trial,
    result: dict,
    metrics: list[str],
    recon_budget: float,
    error: bool = False,
) -> None:
    """Tell Optuna a trial's final result: its values and its constraint, or FAIL and why."""
    reason = result.get("error") or ("the trial errored" if error else None)
    values = [result.get(key) for key in metrics]
    if reason is None and not all(_finite(v) for v in values):
        reason = f"no finite {', '.join(metrics)} in the final result"
    record_recon(trial, result, recon_budget)
    state = TrialState.FAIL if reason is not None else TrialState.COMPLETE
    if reason is not None:
        trial.set_user_attr("error", str(reason)[:500])
    try:
        study.tell(trial, None if reason else [float(v) for v in values], state=state)
    except Exception as exc:  # already finished (e.g. told before a crash)
        logger.warning("could not tell Optuna trial %s: %s", trial.number, exc)


def record_recon(trial: optuna.Trial, result: dict, recon_budget: float) -> None:
    """The trial's final ``recon_nll`` and its constraint ``recon_nll − budget``, if finite."""
    recon = result.get("recon_nll")
    if _finite(recon):
        trial.set_user_attr(RECON_ATTR, float(recon))
        trial.set_constraint(CONSTRAINT, float(recon) - recon_budget)


def _feasible(trial: optuna.trial.FrozenTrial) -> bool:
    """Every constraint of the trial holds (Optuna: a value ≤ 0); none recorded: unknown."""
    constraints = trial.constraints
    return bool(constraints) and all(v <= 0 for v in constraints.values())


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
