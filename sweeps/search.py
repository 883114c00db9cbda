"""Optuna search through Ray Tune with a real reconstruction constraint and seed replicates.

Ray's ``OptunaSearch`` has no constraint hook. Optuna 5 reads constraints from the trial
(``Trial.set_constraint``; feasible when every value is ≤ 0): TPE samples around feasible
trials and ``study.best_trial(s)`` never returns an infeasible one. This subclass sets
``recon_nll − budget`` on the Optuna trial just before Ray tells the study the result.
It relies on ``OptunaSearch._ot_trials``/``_ot_study`` (private in Ray 2.60: the version is
pinned and ``tests/test_sweep_search.py`` checks them).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from sweeps.space import REPLICATE_ATTR

logger = logging.getLogger(__name__)
CONSTRAINT = "recon_nll_over_budget"


class ConstrainedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` + the ``recon_nll ≤ budget`` constraint + seed replicates.

    Args:
        recon_budget: feasible when the final ``recon_nll`` is at most this (nats).
        constrained: set the constraint on trials (the ``pareto`` objective reports the
            budget but searches the whole front, so it passes False).
        replicates: each newly sampled setting also runs with ``replicates − 1`` more seeds.
        max_trials: the sweep's ``num_samples``; no replicate is queued beyond it (a queued
            trial that never runs would stay WAITING in the study).
        Other arguments as ``OptunaSearch``.
    """

    def __init__(
        self,
        *args: Any,
        recon_budget: float,
        constrained: bool = True,
        replicates: int = 1,
        max_trials: int | None = None,
        **kwargs: Any,
    ) -> None:
        self._recon_budget = float(recon_budget)
        self._constrained = constrained
        self._replicates = int(replicates)
        self._max_trials = max_trials
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        ot_trial = self._ot_trials[trial_id]
        if config is not None and REPLICATE_ATTR not in ot_trial.user_attrs:
            # A freshly sampled setting: queue its other seeds right behind it.
            ot_trial.set_user_attr(REPLICATE_ATTR, 0)
            room = math.inf
            if self._max_trials is not None:
                room = self._max_trials - len(self._ot_study.get_trials(deepcopy=False))
            for replicate in range(1, min(self._replicates, 1 + room)):
                self._ot_study.enqueue_trial(
                    ot_trial.params, user_attrs={REPLICATE_ATTR: replicate}
                )
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # Intermediate results carry training curves, not the metric (it is computed once,
        # at the end); there is no pruner to feed.
        return

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        if result and result.get("error"):
            # The trial ended itself on an error it reported (e.g. divergence): FAIL.
            ot_trial.set_user_attr("error", str(result["error"])[:500])
            self._tell(ot_trial, None, TrialState.FAIL)
            self._completed_trials.add(trial_id)
            return
        recon = (result or {}).get("recon_nll")
        if recon is not None and math.isfinite(recon):
            ot_trial.set_user_attr("recon_nll", float(recon))
            if self._constrained:
                ot_trial.set_constraint(CONSTRAINT, float(recon) - self._recon_budget)
        super().on_trial_complete(trial_id, result, error)

    def _tell(self, ot_trial: optuna.Trial, value: Any, state: TrialState) -> None:
        try:
            self._ot_study.tell(ot_trial, value, state=state)
        except Exception as exc:  # already finished (e.g. after a restore)
            logger.warning("could not tell Optuna trial %s: %s", ot_trial.number, exc)
