"""What one sweep is: its settings and the error a bad value gets (the presets fill the
defaults, ``sweeps.config.presets``; the command line reads and checks them,
``sweeps.config.command_line``)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

from betavae.catalogue import METRICS, PRIMARY_KEY, SETTING_METRICS, spec_has_factors
from betavae.command import program_name

PROG = program_name("sweeps/beta_frontier.py")
#: Metrics the search may maximise (``--metric``); each has one primary score.
SEARCH_METRICS = ("beta_vae", "factor_vae", "mig", "dci", *SETTING_METRICS)


#: Settings whose default comes from the environment when the flag is not given.
ENV_DEFAULTS = {
    "address": "RAY_ADDRESS",
    "storage_path": "BETAVAE_STORAGE_PATH",
    "name": "BETAVAE_SWEEP_NAME",
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "mlflow_backup": "BETAVAE_MLFLOW_BACKUP",
}


#: The objective families a sweep can search.
FAMILIES = ("beta", "capacity")


def storage_is_local(storage_path: str) -> bool:
    """A folder on this machine (a plain path or ``file://``), not an ``s3://``… URI."""
    return "://" not in storage_path or storage_path.startswith("file://")


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
    stall_timeout: float | None = None
    """Seconds a trial may report nothing before its worker is killed and it is retried;
    None: derived from the trial's report interval (``sweeps.driver.stall``)."""
    max_failures: int = 2
    """Retries of a trial whose worker was lost or killed as hung, each from its last
    checkpoint (Tune's ``FailureConfig``); -1: no limit. Fixed when the sweep starts."""
    objective: str = "constrained"
    metric: str = "mig"
    recon_budget: float = 150.0
    """Largest feasible reconstruction NLL, nats per image."""
    metrics: tuple[str, ...] = ("mig",)
    """Scores computed at the end of every trial (the searched metric is always among them)."""
    metric_mode: str = "fast"
    """``reference`` (disentanglement_lib's sample sizes) or ``fast`` (see betavae.metrics)."""
    eval_images: int = 10_000
    """Images behind each trial's final ``recon_nll`` and per-latent KL (a fixed, seeded set)."""
    latent_dim_range: tuple[int, int] = (4, 32)
    """Smallest and largest latent size the search may pick."""
    beta_range: tuple[float, float] = (1.0, 32.0)
    """β range of the ``beta`` family (log-uniform)."""
    families: tuple[str, ...] = FAMILIES
    """The objective families searched (``beta``, ``capacity``)."""
    capacity_max_range: tuple[float, float] = (0.0, 100.0)
    """C_max range of the ``capacity`` family, nats (uniform; equal ends fix it)."""
    anneal_fraction_range: tuple[float, float] = (0.1, 1.0)
    """The capacity anneal as a fraction of ``steps`` (uniform; equal ends fix it)."""
    gamma_range: tuple[float, float] = (10.0, 1000.0)
    """γ range of the ``capacity`` family (log-uniform; equal ends fix it)."""
    lr: float = 5e-4
    """Adam learning rate of every trial."""
    dataset: str = "dsprites"
    storage_path: str = "./ray_results"
    tracking_uri: str = "sqlite:///mlflow.db"
    address: str | None = None
    resume: bool | str = False
    """True: continue NAME; "auto": continue it if it exists, else start it."""
    mlflow_backup: str | None = None
    """A sqlite MLflow database to copy to the sweep's storage as trials end (``None``: the
    database of a ``sqlite:///`` tracking URI when the storage is remote)."""
    rebuild_mlflow: bool = False
    """Rebuild the sweep's MLflow runs from Tune's state, then exit (``sweeps.driver.rebuild``)."""
    dry_run: bool = False
    """Print the resolved sweep, its search space and its size, then exit without Ray."""
    seed: int = 0
    num_gpus: float | None = None
    """Logical GPUs for a local Ray (tests fake fractional GPUs with it); None = detect."""
    initial_points: tuple[dict[str, Any], ...] = ()
    """Settings tried first (each with its seed replicates) before the sampler takes over."""
    explicit: frozenset[str] = dataclasses.field(default=frozenset(), compare=False, repr=False)
    """The fields a flag or ``--config`` set (not the preset or a default): a resumed sweep
    takes every other one from its ``sweep.json`` (``sweeps.driver.resume``). Not saved."""

    @property
    def metric_key(self) -> str:
        return PRIMARY_KEY[self.metric]

    @property
    def evaluated_metrics(self) -> tuple[str, ...]:
        """Every trial's scores: the searched metric and ``--metrics``; on a dataset without
        factors only those that need none (UDR), the preset's factor metrics left out."""
        factors = spec_has_factors(self.dataset)
        chosen = tuple(m for m in METRICS if m == self.metric or (m in self.metrics and factors))
        return chosen + tuple(m for m in SETTING_METRICS if m == self.metric)

    def search_settings(self) -> dict[str, Any]:
        """What defines the search (and the retry limit Tune keeps with it); a ``--resume``
        must not change any of it."""
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
            "families",
            "capacity_max_range",
            "anneal_fraction_range",
            "gamma_range",
            "lr",
            "metrics",
            "metric_mode",
            "eval_images",
            "seed",
            "num_samples",
            "initial_points",
            "max_failures",  # in Tune's pickled run config: a resume cannot change it
        )
        return {k: _jsonable(getattr(self, k)) for k in keys}

    @property
    def mlflow_backup_file(self) -> str | None:
        """The sqlite file backed up to the sweep's storage (``sweeps.mlflow_backup``)."""
        if self.mlflow_backup:
            return self.mlflow_backup
        if self.tracking_uri.startswith("sqlite:///") and not storage_is_local(self.storage_path):
            return self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
        return None

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-ready, with credentials in URIs redacted (``analysis.redaction``):
        what ``sweep.json``, the MLflow params and the Optuna study hold."""
        from analysis.redaction import redact_all

        values = dataclasses.asdict(self)
        del values["explicit"]  # how this command line was written, not a setting
        return redact_all({k: _jsonable(v) for k, v in values.items()})


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


def exit_on_usage_error(error: UsageError) -> NoReturn:
    from analysis.redaction import redact

    print(f"{PROG}: error: {redact(str(error))}", file=sys.stderr)
    raise SystemExit(2)


#: Seeds per setting a sweep scored by UDR runs when ``--replicates`` is not given (UDR scores
#: each seed against the setting's others: at least two).
UDR_MIN_SEEDS = 2


def given(settings: SweepSettings, field: str) -> bool:
    """Whether ``field`` was set by a flag (or ``--config``), not left to the preset: so its
    command line says, or, for settings read back without one, a value other than the
    preset's."""
    from sweeps.config.presets import PRESETS

    if field in settings.explicit:
        return True
    preset = PRESETS[settings.preset].get(field, getattr(SweepSettings, field))
    value = getattr(settings, field)
    return (tuple(value) != tuple(preset)) if isinstance(value, (list, tuple)) else value != preset


def settings_warnings(settings: SweepSettings) -> list[str]:
    """What is allowed but wastes part of the sweep: said at its start and by ``--dry-run``."""
    from betavae.catalogue import spec_has_factors

    warnings = []
    if not spec_has_factors(settings.dataset) and not given(settings, "recon_budget"):
        warnings.append(
            f"--recon-budget {settings.recon_budget:g} is the {settings.preset} preset's figure "
            "for dSprites, not a scale for your images: `python -m betavae.data stats "
            f"{settings.dataset}` prints what a model that ignores its input reconstructs them "
            "at; set --recon-budget below that"
        )
    lone = settings.num_samples % settings.replicates
    if settings.metric == "udr" and settings.replicates > 1 and lone:
        fewer = settings.num_samples - lone
        more = fewer + settings.replicates
        warnings.append(
            f"--num-samples {settings.num_samples} is not a multiple of --replicates "
            f"{settings.replicates}: the last setting gets {lone} seed{'s' if lone > 1 else ''}, "
            "and UDR scores a setting only against another seed, so "
            + ("that trial ends FAIL unscored" if lone == 1 else "its score rests on fewer seeds")
            + f"; {fewer} or {more} trials would use every one"
        )
    return warnings


def scoring(settings: SweepSettings) -> dict[str, Any]:
    """How every trial's scores are measured: the metric mode and its protocol settings."""
    from betavae.metrics import describe_mode

    return describe_mode(settings.metric_mode)


def sweep_record(settings: SweepSettings) -> dict[str, Any]:
    """``sweep.json``: what defines the search, every setting, the metric key, the scoring."""
    return {
        "search": settings.search_settings(),
        "settings": settings.to_dict(),
        "metric_key": settings.metric_key,
        "scoring": scoring(settings),
    }
