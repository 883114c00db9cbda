"""Every flag of the sweep, described once: its field, its flag, its help (the default shown
from the cpu preset's value) and what a value must be (the one-line message of
``sweeps.config.validation``).

``FLAGS`` is the table; ``build_parser`` builds argparse from it, ``flag`` names a field's
flag, and ``check_values`` (in ``validation``) walks its rules.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any, NoReturn

from betavae.catalogue import (
    DATASET_SPECS,
    FACTOR_METRICS,
    METRIC_MODES,
    check_dataset_spec,
    spec_has_factors,
)
from sweeps.config.presets import PRESETS
from sweeps.config.settings import (
    ENV_DEFAULTS,
    FAMILIES,
    PROG,
    SEARCH_METRICS,
    SweepSettings,
    UsageError,
)

#: The preset whose values the help shows as defaults.
SHOWN_PRESET = "cpu"


# -- value parsers (argparse ``type``) -------------------------------------------------------
def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _range(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        low, sep, high = text.partition(",")
        try:
            if not sep:
                raise ValueError
            return (kind(low), kind(high))
        except ValueError:
            what = "integers" if kind is int else "numbers"
            raise argparse.ArgumentTypeError(f"not LOW,HIGH {what}: {text!r}") from None

    return parse


def _resume(text: str) -> str:
    if text != "auto":
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: no value (continue NAME) or auto")
    return text


def _families(text: str) -> tuple[str, ...]:
    families = tuple(f.strip() for f in text.split(","))
    if (
        not families
        or any(f not in FAMILIES for f in families)
        or len(set(families)) < len(families)
    ):
        raise argparse.ArgumentTypeError(
            f"not a list of distinct families from {', '.join(FAMILIES)}: {text!r}"
        )
    return families


# -- value rules ------------------------------------------------------------------------------
def _at_least(low: float) -> Callable[[Any, SweepSettings], bool]:
    return lambda v, s: v >= low


def _finite_range(within: Callable[[float, float], bool]) -> Callable[[Any, SweepSettings], bool]:
    return lambda v, s: math.isfinite(v[0]) and math.isfinite(v[1]) and within(*v)


def _pair(value: tuple) -> str:
    return ",".join(map(str, value))


def _valid_name(name: str, s: SweepSettings) -> bool:
    return (
        bool(name)
        and all(c.isalnum() or c in "-_." for c in name)
        and not name.startswith(".")
        and len(name) <= 100
    )


def _valid_dataset(spec: str, s: SweepSettings) -> bool:
    try:
        check_dataset_spec(spec)
    except ValueError:
        return False
    return True


def _metric_fits(metric: str, s: SweepSettings) -> bool:
    if metric == "udr":  # seeds of one setting scored against each other
        return s.replicates >= 2 and s.objective == "constrained"
    return metric not in FACTOR_METRICS or spec_has_factors(s.dataset)


def _metric_allowed(s: SweepSettings) -> str:
    if s.metric == "udr":
        return (
            "udr with at least 2 seeds per setting and --objective constrained (it scores a "
            f"setting's seeds against each other); got --replicates {s.replicates}, "
            f"--objective {s.objective}"
        )
    return f"udr, the one metric that needs no ground-truth factors ({s.dataset} has none)"


_HOST_PORT = re.compile(r"[A-Za-z0-9.\-]+:[0-9]{1,5}|\[[0-9A-Fa-f:]+\]:[0-9]{1,5}")
_TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks")
STORAGE_SCHEMES = ("file", "s3", "gs", "abfs", "hdfs")


def _storage_scheme(path: str) -> str:
    return path.split("://", 1)[0] if "://" in path else "file"


@dataclass(frozen=True)
class Flag:
    """One setting on the command line.

    field: the ``SweepSettings`` field it sets; name: its flag (default ``--`` + the field
    with dashes); help: what it does, without the default (added from the shown preset's
    value, or ``default_text`` where the value alone would not say it); check and allowed:
    the rule a parsed value must meet and the message's "allowed" part (a function of the
    settings where it depends on another value); shown: how the message shows the value.
    """

    field: str
    help: str = ""
    name: str | None = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    default_text: str | None = None
    switch: bool = False
    check: Callable[[Any, SweepSettings], bool] | None = None
    allowed: str | Callable[[SweepSettings], str] = ""
    shown: Callable[[Any], Any] = lambda value: value

    @property
    def flag(self) -> str:
        return self.name or "--" + self.field.replace("_", "-")

    def allowed_for(self, settings: SweepSettings) -> str:
        return self.allowed(settings) if callable(self.allowed) else self.allowed


FLAGS: tuple[Flag, ...] = (
    Flag("name", "sweep and MLflow experiment name", check=_valid_name,
         allowed="up to 100 letters, digits, '-', '_' and '.', not starting with '.'"),
    Flag("num_samples", "trials in total, replicates included", type=_integer,
         check=_at_least(1), allowed="an integer >= 1"),
    Flag("replicates", "seeds per sampled setting", type=_integer, check=_at_least(1),
         allowed="an integer >= 1"),
    Flag("max_concurrent", "trials running at once", type=_integer, check=_at_least(1),
         allowed="an integer >= 1"),
    Flag("cpus_per_trial", "CPU cores per trial", type=_number,
         check=lambda v, s: math.isfinite(v) and v >= 1,
         allowed="a number >= 1 (a trial trains on at least one core)"),
    Flag("gpus_per_trial", "fractions pack several trials on a GPU, e.g. 0.25", type=_number,
         check=lambda v, s: (math.isfinite(v) and 0 <= v <= 1) or (v > 1 and float(v).is_integer()),
         allowed="0, a fraction in (0, 1], or a whole number"),
    Flag("steps", "training steps per trial", type=_integer, check=_at_least(1),
         allowed="an integer >= 1"),
    Flag("batch_size", "images per training step", type=_integer, check=_at_least(1),
         allowed="an integer >= 1"),
    Flag("report_every", "steps between intermediate results", type=_integer,
         check=_at_least(1), allowed="an integer >= 1"),
    Flag("checkpoint_every", "steps between trial checkpoints", type=_integer,
         check=lambda v, s: v >= 1 and v % s.report_every == 0,
         allowed=lambda s: f"a positive multiple of --report-every ({s.report_every})"),
    Flag("max_failures", "retries of a trial whose worker was lost or killed as hung, each "
         "from its last checkpoint; -1: no limit", type=_integer, metavar="N",
         check=_at_least(-1), allowed="an integer >= 0, or -1 for no limit"),
    Flag("stall_timeout", "kill and retry (from its last checkpoint) a trial silent for this "
         "long", type=_number, metavar="SECONDS",
         default_text="10x the trial's longest gap between reports, at least 300 s",
         check=lambda v, s: v is None or (math.isfinite(v) and v > 0),
         allowed="a number of seconds > 0"),
    Flag("objective", "constrained: max metric s.t. recon_nll <= budget; pareto: both",
         choices=("constrained", "pareto")),
    Flag("metric", "the disentanglement score to maximise", choices=SEARCH_METRICS,
         check=_metric_fits, allowed=_metric_allowed),
    Flag("recon_budget", "largest feasible reconstruction NLL, nats per image", type=_number,
         metavar="NATS", check=lambda v, s: math.isfinite(v) and v > 0,
         allowed="a positive number of nats"),
    Flag("metric_mode", "how the scores are measured (sample sizes)", choices=METRIC_MODES),
    Flag("eval_images", "images behind each trial's final recon_nll and KL", type=_integer,
         check=_at_least(1_000),
         allowed="an integer >= 1000 (a dataset smaller than that is evaluated whole)"),
    Flag("beta_range", "β range of the beta family", type=_range(float), metavar="LOW,HIGH",
         check=_finite_range(lambda lo, hi: 0 < lo <= hi <= 1e4), shown=_pair,
         allowed="numbers LOW,HIGH with 0 < LOW <= HIGH <= 10000"),
    Flag("families", "objective families searched: beta, capacity or beta,capacity",
         type=_families, metavar="F[,F]"),
    Flag("capacity_max_range", "C_max range of the capacity family, nats (equal ends fix it)",
         type=_range(float), metavar="LOW,HIGH", shown=_pair,
         check=_finite_range(lambda lo, hi: 0 <= lo <= hi <= 1000),
         allowed="numbers LOW,HIGH of nats with 0 <= LOW <= HIGH <= 1000"),
    Flag("anneal_fraction_range", "capacity anneal as a fraction of --steps (equal ends fix it)",
         type=_range(float), metavar="LOW,HIGH", shown=_pair,
         check=_finite_range(lambda lo, hi: 0 < lo <= hi <= 1),
         allowed="numbers LOW,HIGH with 0 < LOW <= HIGH <= 1"),
    Flag("gamma_range", "γ range of the capacity family (equal ends fix it)",
         type=_range(float), metavar="LOW,HIGH", shown=_pair,
         check=_finite_range(lambda lo, hi: 0 < lo <= hi <= 1e5),
         allowed="numbers LOW,HIGH with 0 < LOW <= HIGH <= 100000"),
    Flag("latent_dim_range", "latent sizes the search may pick", name="--latent-dims",
         type=_range(int), metavar="LOW,HIGH", shown=_pair,
         check=lambda v, s: 1 <= v[0] <= v[1] <= 1024,
         allowed="integers LOW,HIGH with 1 <= LOW <= HIGH <= 1024"),
    Flag("lr", "Adam's learning rate", name="--learning-rate", type=_number,
         check=lambda v, s: math.isfinite(v) and 0 < v <= 1, allowed="a number in (0, 1]"),
    Flag("dataset", "one of " + ", ".join(DATASET_SPECS), check=_valid_dataset,
         allowed="one of " + ", ".join(DATASET_SPECS)),
    Flag("storage_path", "where Tune keeps the sweep", metavar="PATH_OR_URI",
         check=lambda v, s: _storage_scheme(v) in STORAGE_SCHEMES,
         allowed="a local path or an s3://, gs://, abfs:// or hdfs:// URI"),
    Flag("tracking_uri", "MLflow tracking URI", metavar="URI",
         check=lambda v, s: v.split(":", 1)[0] in _TRACKING_SCHEMES,
         allowed="sqlite:///FILE, http(s)://HOST:PORT, postgresql://…, mysql://… or databricks"),
    Flag("address", "Ray cluster address",
         default_text="RAY_ADDRESS, the `ray start` cluster of this machine, else a new local Ray",
         check=lambda v, s: v is None or v in ("auto", "local")
         or _HOST_PORT.fullmatch(v.removeprefix("ray://")) is not None,
         allowed="auto, local, HOST:PORT or ray://HOST:PORT"),
    Flag("resume", "continue the sweep NAME after a crash or interruption; --resume auto "
         "continues it if it exists and starts it if not (for a retried `ray job submit` or "
         "RayJob)", type=_resume, metavar="auto"),
    Flag("mlflow_backup", "a sqlite MLflow database to copy to STORAGE/NAME/_mlflow/ as trials end",
         metavar="PATH",
         default_text="BETAVAE_MLFLOW_BACKUP; else a sqlite:/// tracking URI's file when "
         "storage is remote"),
    Flag("rebuild_mlflow", "rebuild the MLflow runs of the sweep NAME from Tune's state and "
         "checkpoints (into --tracking-uri; runs found by tag are not written twice), then exit",
         switch=True),
    Flag("dry_run", "print the resolved sweep (sweep.json), its search space, trial count and "
         "training images as JSON, then exit without starting Ray", switch=True),
    Flag("seed", "sweep seed (sampler, trials)", type=_integer, check=_at_least(0),
         allowed="an integer >= 0"),
    Flag("num_gpus", "logical GPUs of a new local Ray (testing)", type=_number,
         default_text="detect", check=lambda v, s: v is None or (math.isfinite(v) and v >= 0),
         allowed="a number >= 0"),
)  # fmt: skip

_BY_FIELD = {f.field: f for f in FLAGS}


def flag(field: str) -> str:
    """The command-line flag of a :class:`SweepSettings` field."""
    return _BY_FIELD[field].flag if field in _BY_FIELD else "--" + field.replace("_", "-")


def shown_default(entry: Flag) -> str | None:
    """What the help says the default is: the environment variable that may set it, then the
    shown preset's value (or the settings' own default)."""
    if entry.switch or entry.field == "resume":
        return None
    if entry.default_text is not None:
        return entry.default_text
    value = PRESETS[SHOWN_PRESET].get(entry.field, _field_default(entry.field))
    text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    variable = ENV_DEFAULTS.get(entry.field)
    return f"{variable}, else {text}" if variable else text


def _field_default(name: str) -> Any:
    field = next(f for f in fields(SweepSettings) if f.name == name)
    return field.default if field.default is not MISSING else None


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read "-1,8" (a range starting below zero) as a value, not as an unknown option, so
        # that the range's own check can name the problem.
        self._negative_number_matcher = re.compile(r"^-(\d+|\d*\.\d+)(,\S*)?$")

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The sweep's parser from ``FLAGS``; a flag not given is absent from the namespace (the
    preset, the environment and the settings' defaults fill it, ``command_line``)."""
    p = _Parser(
        prog=PROG,
        allow_abbrev=False,  # a misspelt flag is an error, not a silent prefix match
        description="Sweep β-VAEs for the disentanglement / reconstruction frontier with Ray "
        f"Tune, Optuna and MLflow. Defaults shown are the {SHOWN_PRESET} preset's.",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), default=argparse.SUPPRESS,
                   help=f"defaults for everything below (default: {SHOWN_PRESET})")  # fmt: skip
    p.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE.toml",
                   help="read these flags from a TOML file (flags given here win)")  # fmt: skip
    for entry in FLAGS:
        default = shown_default(entry)
        options: dict[str, Any] = {
            "dest": entry.field,
            "default": argparse.SUPPRESS,
            "help": f"{entry.help} (default: {default})" if default else entry.help,
        }
        if entry.switch:
            options["action"] = "store_true"
        elif entry.field == "resume":
            options.update(nargs="?", const=True, type=entry.type, metavar=entry.metavar)
        else:
            options.update(type=entry.type, choices=entry.choices, metavar=entry.metavar)
        p.add_argument(entry.flag, **options)
    return p
