"""A trial's config, typed: built once from Tune's dict, every derived value computed here.

Tune hands each trial a flat dict: the values the searcher chose (``sweeps.search``) merged
with the sweep's constants (``trial_constants`` in ``sweeps.driver.tuner``). ``TrialConfig``
reads it once, rejects a key it does not know (a typo in a caller would otherwise be trained
silently with a default), and owns what is derived from it: the capacity anneal in steps, the
``TrainConfig``, feasibility, the MLflow parameters and the labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from analysis.schema import OPTUNA_TRIAL_KEY, PARAMS, anneal_steps, setting_id, setting_label
from betavae.config import TrainConfig

#: The child runs' params read from the ``TrainConfig``: the record's ``PARAMS`` but the two
#: a ``TrainConfig`` does not hold (``mlflow_params`` adds them from the trial).
MLFLOW_PARAMS = tuple(p for p in PARAMS if p not in ("anneal_fraction", "replicate"))
_UNUSED = {"beta": ("gamma", "capacity_max", "capacity_anneal_steps"), "capacity": ("beta",)}


@dataclass(frozen=True)
class TrialConfig:
    """One trial: the searched setting, its seed, and the sweep's constants."""

    # what the searcher chose
    objective: str
    latent_dim: int
    seed: int
    replicate: int = 0
    beta: float | None = None
    capacity_max: float | None = None
    anneal_fraction: float | None = None
    gamma: float | None = None
    optuna_trial: int | None = None
    # the sweep's constants
    steps: int = 0
    batch_size: int = 64
    model: str = "burgess"
    dataset: str = "dsprites"
    lr: float = TrainConfig.lr
    report_every: int = 100
    checkpoint_every: int = 500
    metrics: tuple[str, ...] = ()
    metric_mode: str = "fast"
    eval_images: int = 10_000
    recon_budget: float = float("inf")
    cpus_per_trial: float = 1.0

    @classmethod
    def from_tune(cls, config: Mapping[str, Any]) -> TrialConfig:
        """Tune's trial config → ``TrialConfig``; an unknown key is a ``ValueError``."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"trial config: unknown key(s) {unknown}; allowed: {sorted(known)}")
        values = dict(config)
        if values.get("objective") not in ("beta", "capacity"):
            raise ValueError(
                f"trial config: objective {values.get('objective')!r}; allowed: beta, capacity"
            )
        for name in ("latent_dim", "seed", "replicate", "steps", "batch_size", "report_every",
                     "checkpoint_every", "eval_images", OPTUNA_TRIAL_KEY):  # fmt: skip
            if values.get(name) is not None:
                values[name] = int(values[name])
        for name in ("beta", "capacity_max", "anneal_fraction", "gamma", "lr", "recon_budget",
                     "cpus_per_trial"):  # fmt: skip
            if values.get(name) is not None:
                values[name] = float(values[name])
        if "metrics" in values:
            values["metrics"] = tuple(values["metrics"])
        return cls(**values)

    # -- derived -------------------------------------------------------------------------
    @property
    def capacity_anneal_steps(self) -> int | None:
        """The capacity anneal in steps (``anneal_fraction × steps``); None for β."""
        if self.objective != "capacity" or self.anneal_fraction is None:
            return None
        return anneal_steps(self.anneal_fraction, self.steps)

    def train_config(self) -> TrainConfig:
        """What ``betavae`` trains: the searched values and the sweep's fixed ones."""
        values: dict[str, Any] = {}
        if self.objective == "beta":
            values["beta"] = self.beta
        else:
            values.update(
                capacity_max=self.capacity_max,
                gamma=self.gamma,
                capacity_anneal_steps=self.capacity_anneal_steps,
            )
        return TrainConfig(
            objective=self.objective,
            latent_dim=self.latent_dim,
            seed=self.seed,
            steps=self.steps,
            batch_size=self.batch_size,
            model=self.model,
            dataset=self.dataset,
            lr=self.lr,
            **values,
        )

    def feasible(self, recon_nll: float) -> bool:
        """Within the reconstruction budget (a NaN is not)."""
        return recon_nll <= self.recon_budget

    def mlflow_params(self) -> dict[str, str]:
        """The child run's params, flat strings; the other family's values are "n/a"."""
        train = self.train_config().to_dict()
        params = {k: str(train[k]) for k in MLFLOW_PARAMS}
        for unused in _UNUSED[self.objective]:
            params[unused] = "n/a"
        params["replicate"] = str(self.replicate)
        if self.anneal_fraction is not None:
            params["anneal_fraction"] = str(self.anneal_fraction)
        return params

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def setting(self) -> str:
        """The id shared by this setting's seed replicates."""
        return setting_id(self.as_dict())

    def label(self, *, seed: bool = True) -> str:
        """``β=4, z=10, seed 0`` or ``C=25, γ=100, z=10, seed 0``."""
        return setting_label(self.as_dict(), seed=seed)

    def dirname(self, trial_id: str) -> str:
        """Tune's trial name and folder: ``b4-z10-s0-<id>`` or ``C25-g100-z10-s0-<id>``."""
        if self.objective == "capacity":
            what = f"C{self.capacity_max:.3g}-g{self.gamma:.3g}"
        else:
            what = f"b{self.beta:.3g}"
        return f"{what}-z{self.latent_dim}-s{self.seed}-{trial_id}"
