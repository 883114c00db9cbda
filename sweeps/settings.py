"""What one sweep is: its settings, the presets that fill their defaults, and the error a bad
value gets (read and checked from the command line by ``sweeps.command_line``)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from betavae.metrics import METRICS, PRIMARY_KEY

PROG = "sweeps/beta_frontier.py"
#: Metrics the search may maximise (``--metric``); each has one primary score.
SEARCH_METRICS = ("beta_vae", "factor_vae", "mig", "dci")


#: Settings whose default comes from the environment when the flag is not given.
ENV_DEFAULTS = {
    "address": "RAY_ADDRESS",
    "storage_path": "BETAVAE_STORAGE_PATH",
    "tracking_uri": "MLFLOW_TRACKING_URI",
}


#: Settings whose flag is not ``--`` + the field name with dashes.
_FLAG_NAMES = {"latent_dim_range": "--latent-dims", "lr": "--learning-rate"}


def flag(field: str) -> str:
    """The command-line flag of a :class:`SweepSettings` field."""
    return _FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


class UsageError(ValueError):
    """A sweep setting outside what is allowed; the message is one line for the user."""


@dataclass(frozen=True)
class SweepSettings:
    """A whole sweep: search, training scale, resources, storage. Presets fill the defaults."""

    preset: str
    name: str = "beta-frontier"
    num_samples: int = 12
    """Trials in total (each a setting × seed replicate)."""
    replicates: int = 3
    """Seeds per sampled setting; the spread over them is the seed-to-seed noise."""
    max_concurrent: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    steps: int = 1_500
    batch_size: int = 64
    model: str = "burgess"
    report_every: int = 250
    """Steps between intermediate results (and MLflow metric points)."""
    checkpoint_every: int = 500
    """Steps between Tune checkpoints (a restored trial continues from the last one)."""
    objective: str = "constrained"
    metric: str = "mig"
    recon_budget: float = 150.0
    """Largest feasible reconstruction NLL, nats per image."""
    metrics: tuple[str, ...] = ("mig",)
    """Scores computed at the end of every trial (the searched metric is always among them)."""
    metric_mode: str = "fast"
    """``reference`` (disentanglement_lib's sample sizes) or ``fast`` (see betavae.metrics)."""
    latent_dim_range: tuple[int, int] = (4, 32)
    """Smallest and largest latent size the search may pick."""
    beta_range: tuple[float, float] = (1.0, 32.0)
    """β range of the ``beta`` family (log-uniform)."""
    lr: float = 5e-4
    """Adam learning rate of every trial."""
    dataset: str = "dsprites"
    storage_path: str = "./ray_results"
    tracking_uri: str = "sqlite:///mlflow.db"
    address: str | None = None
    resume: bool = False
    seed: int = 0
    num_gpus: float | None = None
    """Logical GPUs for a local Ray (tests fake fractional GPUs with it); None = detect."""
    initial_points: tuple[dict[str, Any], ...] = ()
    """Settings tried first (each with its seed replicates) before the sampler takes over."""

    @property
    def metric_key(self) -> str:
        return PRIMARY_KEY[self.metric]

    @property
    def evaluated_metrics(self) -> tuple[str, ...]:
        return tuple(m for m in METRICS if m in self.metrics or m == self.metric)

    @property
    def storage_is_local(self) -> bool:
        return "://" not in self.storage_path or self.storage_path.startswith("file://")

    @property
    def storage_root(self) -> str:
        """``storage_path`` as Tune needs it: an absolute local path or a URI (which may end in
        pyarrow's ``?key=value`` options, e.g. ``endpoint_override`` for S3-compatible stores)."""
        if self.storage_is_local:
            return str(Path(self.storage_path.removeprefix("file://")).expanduser().resolve())
        base, mark, options = self.storage_path.partition("?")
        return base.rstrip("/") + mark + options

    @property
    def experiment_path(self) -> str:
        """Where Tune keeps this sweep's state: ``STORAGE/NAME`` (options kept at the end)."""
        if self.storage_is_local:
            return f"{self.storage_root}/{self.name}"
        base, mark, options = self.storage_root.partition("?")
        return f"{base}/{self.name}{mark}{options}"

    def search_settings(self) -> dict[str, Any]:
        """What defines the search; a ``--resume`` must not change any of it."""
        keys = (
            "objective",
            "metric",
            "recon_budget",
            "replicates",
            "steps",
            "batch_size",
            "model",
            "dataset",
            "latent_dim_range",
            "beta_range",
            "lr",
            "metrics",
            "metric_mode",
            "seed",
            "num_samples",
            "initial_points",
        )
        return {k: _jsonable(getattr(self, k)) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in dataclasses.asdict(self).items()}


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


PRESETS: dict[str, dict[str, Any]] = {
    # Seconds: an end-to-end check of every moving part (tests run it).
    "smoke": dict(
        num_samples=4,
        replicates=2,
        max_concurrent=2,
        steps=40,
        batch_size=32,
        report_every=10,
        checkpoint_every=20,
        metrics=("mig",),
        latent_dim_range=(4, 8),
        recon_budget=1200.0,
    ),
    # The embedded default: a real, small trade-off on 2 CPU cores in under 15 minutes.
    "cpu": dict(
        num_samples=12,
        replicates=2,
        max_concurrent=2,
        steps=1_200,
        batch_size=64,
        report_every=200,
        checkpoint_every=400,
        metrics=("mig", "dci", "sap", "modularity"),
        latent_dim_range=(4, 10),
        recon_budget=110.0,
        # A β ladder first: with only 6 settings, random draws may all land in the capacity
        # family (seed 0 drew 5 in a row), and the β trade-off would not show.
        initial_points=tuple(
            {"objective": "beta", "beta": beta, "latent_dim": 10} for beta in (2.0, 8.0, 32.0)
        ),
    ),
    # Full scale on GPUs (Burgess et al.'s 300k steps at batch 64), four trials per GPU.
    "paper": dict(
        num_samples=64,
        replicates=3,
        max_concurrent=16,
        cpus_per_trial=2.0,
        gpus_per_trial=0.25,
        steps=300_000,
        batch_size=64,
        report_every=1_000,
        checkpoint_every=10_000,
        metric="dci",
        metrics=METRICS,
        metric_mode="reference",
        latent_dim_range=(4, 32),
        recon_budget=40.0,
    ),
}


def exit_on_usage_error(error: UsageError) -> NoReturn:
    print(f"{PROG}: error: {error}", file=sys.stderr)
    raise SystemExit(2)
