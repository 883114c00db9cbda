"""What one sweep is: its settings, the presets that fill their defaults, and the error a bad
value gets (read and checked from the command line by ``sweeps.command_line``)."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from betavae.catalogue import METRICS, PRIMARY_KEY
from betavae.command import program_name

PROG = program_name("sweeps/beta_frontier.py")
#: Metrics the search may maximise (``--metric``); each has one primary score.
SEARCH_METRICS = ("beta_vae", "factor_vae", "mig", "dci")


#: Settings whose default comes from the environment when the flag is not given.
ENV_DEFAULTS = {
    "address": "RAY_ADDRESS",
    "storage_path": "BETAVAE_STORAGE_PATH",
    "tracking_uri": "MLFLOW_TRACKING_URI",
    "mlflow_backup": "BETAVAE_MLFLOW_BACKUP",
}


#: Settings whose flag is not ``--`` + the field name with dashes.
_FLAG_NAMES = {"latent_dim_range": "--latent-dims", "lr": "--learning-rate"}
#: The objective families a sweep can search.
FAMILIES = ("beta", "capacity")


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
    stall_timeout: float | None = None
    """Seconds a trial may report nothing before its worker is killed and it is retried;
    None: derived from the trial's report interval (``sweeps.stall``)."""
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
    """Rebuild the sweep's MLflow runs from Tune's state, then exit (``sweeps.reconcile``)."""
    dry_run: bool = False
    """Print the resolved sweep, its search space and its size, then exit without Ray."""
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
        if self.tracking_uri.startswith("sqlite:///") and not self.storage_is_local:
            return self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
        return None

    @property
    def shown_experiment_path(self) -> str:
        """``experiment_path`` as written and printed, and the sweep's identity (the parent
        run's tag, the journal's local folder): without the credentials that reach it."""
        from analysis.redaction import without_credentials

        return without_credentials(self.experiment_path)

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-ready, with credentials in URIs redacted (``analysis.redaction``):
        what ``sweep.json``, the MLflow params and the Optuna study hold."""
        from analysis.redaction import redact_all

        return redact_all({k: _jsonable(v) for k, v in dataclasses.asdict(self).items()})


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


#: The paper preset's budget, nats per image (see BUDGET_BASIS).
PAPER_BUDGET = 40.0
#: Where each preset's reconstruction budget comes from (``--dry-run`` says it).
BUDGET_BASIS = {
    "smoke": "none to speak of: the smoke preset checks the moving parts, not the science",
    "cpu": "measured: the cpu preset's own sweep (docs/SWEEPS.md, 'What the cpu preset shows')",
    "paper": "an estimate, not yet measured at 300k steps: see docs/SWEEPS.md, 'Presets and flags'",
}

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
        metric_mode="smoke",
        eval_images=1_000,
        latent_dim_range=(4, 8),
        recon_budget=1200.0,
    ),
    # The embedded default: a real, small trade-off on 2 CPU cores. At 1,200 steps every
    # capacity setting measured learned (recon 126-237 nats, far below the 565-nat
    # ignore-the-input level), but γ = 1000 encodes positions only where γ = 100 adds scale
    # (docs/SWEEPS.md, 'What is searched'): γ is searched on [20, 200]; C_max < 5 nats buys little.
    "cpu": dict(
        num_samples=12,
        # One seed per setting and no starting points: the search measured best on the
        # recorded landscape of this space (docs/SWEEPS.md, 'Does the search earn its trials?').
        replicates=1,
        max_concurrent=2,
        steps=1_200,
        batch_size=64,
        report_every=200,
        checkpoint_every=400,
        metrics=("mig", "dci", "sap", "modularity"),
        latent_dim_range=(5, 10),
        capacity_max_range=(5.0, 50.0),
        anneal_fraction_range=(0.25, 1.0),
        gamma_range=(20.0, 200.0),
        # Measured (docs/SWEEPS.md, 'What the cpu preset shows'): β = 2 ends at ~102 nats, β = 8 at
        # 132-151; the budget sits between the two rungs.
        recon_budget=130.0,
    ),
    # disentanglement_lib's training protocol (Locatello et al. 2019: 300k steps at batch 64,
    # Adam lr 1e-4, β₁ 0.9, β₂ 0.999, ε 1e-8 — PyTorch's defaults) and the papers' spaces: β on
    # [1, 16]; the capacity family at γ = 1000 with C reached at 100k steps (Burgess et al.
    # 2017) and C_max on [5, 100]. Searched beyond the papers: β and C_max as continuous ranges
    # (the papers run grids) and the latent size around the papers' 10. Four trials per GPU.
    "paper": dict(
        num_samples=64,
        replicates=3,
        max_concurrent=16,
        cpus_per_trial=2.0,
        gpus_per_trial=0.25,
        steps=300_000,
        batch_size=64,
        lr=1e-4,
        report_every=1_000,
        checkpoint_every=10_000,
        metric="dci",
        metrics=METRICS,
        metric_mode="reference",
        beta_range=(1.0, 16.0),
        capacity_max_range=(5.0, 100.0),
        anneal_fraction_range=(1 / 3, 1 / 3),
        gamma_range=(1000.0, 1000.0),
        latent_dim_range=(5, 15),
        recon_budget=PAPER_BUDGET,
        # The papers' own settings first: β = 4 and 16, and Burgess et al.'s C_max = 25.
        initial_points=(
            {"objective": "beta", "beta": 4.0, "latent_dim": 10},
            {"objective": "beta", "beta": 16.0, "latent_dim": 10},
            {
                "objective": "capacity",
                "capacity_max": 25.0,
                "anneal_fraction": 1 / 3,
                "gamma": 1000.0,
                "latent_dim": 10,
            },
        ),
    ),
}


def exit_on_usage_error(error: UsageError) -> NoReturn:
    from analysis.redaction import redact

    print(f"{PROG}: error: {redact(str(error))}", file=sys.stderr)
    raise SystemExit(2)


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
