"""The training configuration: one frozen, validated dataclass.

Every field is checked in ``__post_init__``; a bad value raises :class:`ConfigError`, which
names the field, the value and what is allowed, so CLIs and sweeps can report it in one line.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from betavae.catalogue import DATASET_SPECS, check_dataset_spec
from betavae.models import MODEL_NAMES


class ConfigError(ValueError):
    """A config field with a value outside what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


@dataclass(frozen=True)
class TrainConfig:
    """What one β-VAE training run is: objective, model, data and optimiser settings."""

    objective: Literal["beta", "capacity"] = "beta"
    """``beta``: recon + β·KL (Higgins 2017); ``capacity``: recon + γ·|KL − C| (Burgess 2017)."""
    beta: float = 4.0
    """Weight of the KL term in the β objective (β = 1 is the plain VAE)."""
    gamma: float = 1000.0
    """Weight of |KL − C| in the capacity objective."""
    capacity_min: float = 0.0
    """Target KL (nats) at step 0 in the capacity objective."""
    capacity_max: float = 25.0
    """Target KL (nats) reached after ``capacity_anneal_steps``."""
    capacity_anneal_steps: int = 100_000
    """Steps over which C rises linearly from ``capacity_min`` to ``capacity_max``."""
    latent_dim: int = 10
    """Number of latent dimensions."""
    model: Literal["burgess", "mlp"] = "burgess"
    """``burgess``: the conv net of Burgess et al. 2017; ``mlp``: Higgins et al.'s MLP."""
    recon: Literal["bernoulli", "gaussian"] = "bernoulli"
    """Reconstruction likelihood: Bernoulli (BCE) or Gaussian with std ``recon_sigma``."""
    recon_sigma: float = math.sqrt(0.5)
    """Pixel std of the Gaussian likelihood (√0.5 makes it a sum of squared errors + const)."""
    steps: int = 300_000
    """Optimiser steps in total."""
    batch_size: int = 64
    """Images per step."""
    lr: float = 5e-4
    """Adam learning rate."""
    seed: int = 0
    """Seeds weights, batches and the reparameterisation noise."""
    dataset: str = "dsprites"
    """A dataset spec (see ``betavae.data.DATASET_SPECS``), e.g. ``shapes3d:PATH``."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Autocast dtype; ``auto`` is bf16 on CPUs with native bf16, fp32 elsewhere (measured)."""
    channels_last: bool = True
    """Use the channels-last memory format for the conv model (faster on CPU and CUDA)."""
    compile: bool = False
    """Wrap the model in ``torch.compile`` (costs a cold compile; pays off on long GPU runs)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Training device; ``auto`` is CUDA when available."""

    def __post_init__(self) -> None:
        _choice(self, "objective", ("beta", "capacity"))
        _choice(self, "model", MODEL_NAMES)
        _choice(self, "recon", ("bernoulli", "gaussian"))
        _choice(self, "precision", ("auto", "fp32", "bf16"))
        _choice(self, "device", ("auto", "cpu", "cuda"))
        _number(self, "beta", low=0.0, low_open=True)
        _number(self, "gamma", low=0.0, low_open=True)
        _number(self, "capacity_min", low=0.0)
        _number(self, "capacity_max", low=self.capacity_min, what="capacity_min")
        _number(self, "recon_sigma", low=0.0, low_open=True)
        _number(self, "lr", low=0.0, low_open=True, high=1.0)
        _integer(self, "capacity_anneal_steps", low=0)
        _integer(self, "latent_dim", low=1, high=1024)
        _integer(self, "steps", low=1)
        _integer(self, "batch_size", low=1, high=65_536)
        _integer(self, "seed", low=0, high=2**63 - 1)
        for name in ("channels_last", "compile"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(name, getattr(self, name), "true or false")
        try:
            check_dataset_spec(self.dataset)
        except ValueError:
            raise ConfigError(
                "dataset", self.dataset, "one of " + ", ".join(DATASET_SPECS)
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a plain dict (JSON, a Tune config); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(unknown[0], values[unknown[0]], f"one of the fields {sorted(known)}")
        return cls(**values)


def _choice(cfg: TrainConfig, name: str, allowed: tuple[str, ...]) -> None:
    value = getattr(cfg, name)
    if value not in allowed:
        raise ConfigError(name, value, "one of " + ", ".join(allowed))


def _number(
    cfg: TrainConfig,
    name: str,
    *,
    low: float,
    low_open: bool = False,
    high: float | None = None,
    what: str | None = None,
) -> None:
    value = getattr(cfg, name)
    bound = f"{low:g}" if what is None else f"{what} ({low:g})"
    allowed = f"a finite number {'>' if low_open else '>='} {bound}"
    if high is not None:
        allowed += f" and <= {high:g}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, value, allowed)
    if value < low or (low_open and value == low) or (high is not None and value > high):
        raise ConfigError(name, value, allowed)


def _integer(cfg: TrainConfig, name: str, *, low: int, high: int | None = None) -> None:
    value = getattr(cfg, name)
    allowed = f"an integer >= {low}" + ("" if high is None else f" and <= {high}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, value, allowed)
    if value < low or (high is not None and value > high):
        raise ConfigError(name, value, allowed)
