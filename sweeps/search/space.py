"""The search space, define-by-run: objective family, then that family's hyperparameters.

- ``beta`` family (Higgins et al. 2017): β log-uniform on ``beta_range``; β = 1 is the plain
  VAE.
- ``capacity`` family (Burgess et al. 2017): C_max uniform on ``capacity_max_range`` nats, the
  anneal as a fraction of training uniform on ``anneal_fraction_range``, γ log-uniform on
  ``gamma_range``.
- Both: ``latent_dim`` an integer in ``latent_dim_range``.

A range whose ends are equal fixes that value (Optuna records it like any other); a single
family in ``families`` fixes the family.

Seeds are replicates, not a searched parameter: the searcher enqueues every newly sampled
setting again for seeds ``seed + 1 … seed + replicates − 1`` (see ``sweeps.search.searcher``),
so the spread of a setting over seeds is measured, not confounded with the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis.schema import REPLICATE_ATTR, anneal_steps

__all__ = ["SearchSpace"]

BETA_RANGE = (1.0, 32.0)
CAPACITY_MAX_RANGE = (0.0, 100.0)
ANNEAL_FRACTION_RANGE = (0.1, 1.0)
GAMMA_RANGE = (10.0, 1000.0)
FAMILIES = ("beta", "capacity")


@dataclass(frozen=True)
class SearchSpace:
    """Callable on an Optuna trial; returns the constants that complete a trial's config.

    Picklable (Tune checkpoints the searcher with it).
    """

    steps: int
    latent_dim_range: tuple[int, int] = (4, 32)
    seed: int = 0
    beta_range: tuple[float, float] = BETA_RANGE
    capacity_max_range: tuple[float, float] = CAPACITY_MAX_RANGE
    anneal_fraction_range: tuple[float, float] = ANNEAL_FRACTION_RANGE
    gamma_range: tuple[float, float] = GAMMA_RANGE
    families: tuple[str, ...] = FAMILIES

    def contains(self, point: dict[str, Any]) -> bool:
        """Whether a fixed starting point (``initial_points``) lies inside this space."""
        if point.get("objective", self.families[0]) not in self.families:
            return False
        ranges = {
            "latent_dim": self.latent_dim_range,
            "beta": self.beta_range,
            "capacity_max": self.capacity_max_range,
            "anneal_fraction": self.anneal_fraction_range,
            "gamma": self.gamma_range,
        }
        return all(lo <= point.get(k, lo) <= hi for k, (lo, hi) in ranges.items())

    def describe(self) -> dict[str, Any]:
        """The space in words, JSON-ready (``--dry-run`` prints it)."""
        out: dict[str, Any] = {"objective": {"choices": list(self.families)}}
        if "beta" in self.families:
            out["beta"] = _dimension(self.beta_range, "log-uniform", family="beta")
        if "capacity" in self.families:
            out["capacity_max"] = _dimension(self.capacity_max_range, "uniform", "capacity")
            out["anneal_fraction"] = _dimension(self.anneal_fraction_range, "uniform", "capacity")
            low, high = (anneal_steps(f, self.steps) for f in self.anneal_fraction_range)
            out["anneal_fraction"]["steps"] = [low, high]
            out["gamma"] = _dimension(self.gamma_range, "log-uniform", family="capacity")
        out["latent_dim"] = _dimension(self.latent_dim_range, "integer uniform")
        return out

    def __call__(self, trial: Any) -> dict[str, Any]:
        family = trial.suggest_categorical("objective", list(self.families))
        if family == "beta":
            trial.suggest_float("beta", *self.beta_range, log=True)
        else:
            trial.suggest_float("capacity_max", *self.capacity_max_range)
            trial.suggest_float("anneal_fraction", *self.anneal_fraction_range)
            trial.suggest_float("gamma", *self.gamma_range, log=True)
        trial.suggest_int("latent_dim", *self.latent_dim_range)
        replicate = int(trial.user_attrs.get(REPLICATE_ATTR, 0))
        return {"replicate": replicate, "seed": self.seed + replicate}


def _dimension(bounds: tuple, kind: str, family: str | None = None) -> dict[str, Any]:
    low, high = bounds
    out: dict[str, Any] = {"fixed": low}
    if low != high:
        out = {"low": low, "high": high, "kind": kind}
    return {**out, "family": family} if family else out
