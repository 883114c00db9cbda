"""The sweep's command line: flags and ``--config`` files → validated settings, before Ray
starts.

Every value a user can pass is checked (``sweeps.validation``) before anything starts, so a
typo costs one line on stderr and exit code 2, not a Ray cluster start-up followed by failed
trials.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from betavae.catalogue import DATASET_SPECS, METRIC_MODES
from sweeps.settings import (
    ENV_DEFAULTS,
    FAMILIES,
    PRESETS,
    PROG,
    SEARCH_METRICS,
    SweepSettings,
    UsageError,
)
from sweeps.validation import fail, validate


def _integer(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    return value


def _range(kind: type):
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


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Read "-1,8" (a range starting below zero) as a value, not as an unknown option, so
        # that the range's own check can name the problem.
        self._negative_number_matcher = re.compile(r"^-(\d+|\d*\.\d+)(,\S*)?$")

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        allow_abbrev=False,  # a misspelt flag is an error, not a silent prefix match
        description="Sweep β-VAEs for the disentanglement / "
        "reconstruction frontier with Ray Tune, Optuna and MLflow.",
    )
    S = argparse.SUPPRESS
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="cpu",
        help="defaults for everything below (default: cpu)",
    )
    p.add_argument(
        "--config",
        default=S,
        metavar="FILE.toml",
        help="read these flags from a TOML file (flags given here win)",
    )
    p.add_argument(
        "--name", default=S, help="sweep and MLflow experiment name (default: beta-frontier)"
    )
    p.add_argument(
        "--num-samples", type=_integer, default=S, help="trials in total, replicates included"
    )
    p.add_argument("--replicates", type=_integer, default=S, help="seeds per sampled setting")
    p.add_argument("--max-concurrent", type=_integer, default=S, help="trials running at once")
    p.add_argument("--cpus-per-trial", type=_number, default=S)
    p.add_argument(
        "--gpus-per-trial",
        type=_number,
        default=S,
        help="fractions pack several trials on a GPU, e.g. 0.25",
    )
    p.add_argument("--steps", type=_integer, default=S, help="training steps per trial")
    p.add_argument("--batch-size", type=_integer, default=S)
    p.add_argument(
        "--report-every", type=_integer, default=S, help="steps between intermediate results"
    )
    p.add_argument(
        "--checkpoint-every", type=_integer, default=S, help="steps between trial checkpoints"
    )
    p.add_argument(
        "--max-failures",
        type=_integer,
        default=S,
        metavar="N",
        help="retries of a trial whose worker was lost or killed as hung, each from its last "
        "checkpoint; -1: no limit (default 2)",
    )
    p.add_argument(
        "--stall-timeout",
        type=_number,
        default=S,
        metavar="SECONDS",
        help="kill and retry (from its last checkpoint) a trial silent for this long; default: "
        "10x the trial's longest gap between reports, at least 300 s",
    )
    p.add_argument(
        "--objective",
        choices=["constrained", "pareto"],
        default=S,
        help="constrained: max metric s.t. recon_nll <= budget; pareto: both",
    )
    p.add_argument(
        "--metric", choices=SEARCH_METRICS, default=S, help="the disentanglement score to maximise"
    )
    p.add_argument(
        "--recon-budget",
        type=_number,
        default=S,
        metavar="NATS",
        help="largest feasible reconstruction NLL, nats per image",
    )
    p.add_argument("--metric-mode", choices=METRIC_MODES, default=S)
    p.add_argument(
        "--eval-images",
        type=_integer,
        default=S,
        help="images behind each trial's final recon_nll and KL (default 10000)",
    )
    p.add_argument(
        "--beta-range",
        type=_range(float),
        default=S,
        metavar="LOW,HIGH",
        help="β range of the beta family (default: 1,32)",
    )
    p.add_argument(
        "--families",
        type=_families,
        default=S,
        metavar="F[,F]",
        help="objective families searched: beta, capacity or beta,capacity",
    )
    p.add_argument(
        "--capacity-max-range",
        type=_range(float),
        default=S,
        metavar="LOW,HIGH",
        help="C_max range of the capacity family, nats (equal ends fix it)",
    )
    p.add_argument(
        "--anneal-fraction-range",
        type=_range(float),
        default=S,
        metavar="LOW,HIGH",
        help="capacity anneal as a fraction of --steps (equal ends fix it)",
    )
    p.add_argument(
        "--gamma-range",
        type=_range(float),
        default=S,
        metavar="LOW,HIGH",
        help="γ range of the capacity family (equal ends fix it)",
    )
    p.add_argument(
        "--latent-dims",
        dest="latent_dim_range",
        type=_range(int),
        default=S,
        metavar="LOW,HIGH",
        help="latent sizes the search may pick (cpu preset: 5,10)",
    )
    p.add_argument(
        "--learning-rate", dest="lr", type=_number, default=S, help="Adam's (default: 5e-4)"
    )
    p.add_argument("--dataset", default=S, help="one of " + ", ".join(DATASET_SPECS))
    p.add_argument(
        "--storage-path",
        default=S,
        metavar="PATH_OR_URI",
        help="where Tune keeps the sweep (default: BETAVAE_STORAGE_PATH, else ./ray_results)",
    )
    p.add_argument(
        "--tracking-uri",
        default=S,
        metavar="URI",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    p.add_argument(
        "--address",
        default=S,
        help="Ray cluster address (default: RAY_ADDRESS, a running cluster, else a new local Ray)",
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        type=_resume,
        default=S,
        metavar="auto",
        help="continue the sweep NAME after a crash or interruption; --resume auto continues "
        "it if it exists and starts it if not (for a retried `ray job submit` or RayJob)",
    )
    p.add_argument(
        "--mlflow-backup",
        default=S,
        metavar="PATH",
        help="a sqlite MLflow database to copy to STORAGE/_mlflow/ as trials end (default: "
        "BETAVAE_MLFLOW_BACKUP; else a sqlite:/// tracking URI's file when storage is remote)",
    )
    p.add_argument(
        "--rebuild-mlflow",
        action="store_true",
        default=S,
        help="rebuild the MLflow runs of the sweep NAME from Tune's state and checkpoints "
        "(into --tracking-uri; runs found by tag are not written twice), then exit",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        default=S,
        help="print the resolved sweep (sweep.json), its search space, trial count and "
        "training images as JSON, then exit without starting Ray",
    )
    p.add_argument("--seed", type=_integer, default=S, help="sweep seed (sampler, trials)")
    p.add_argument(
        "--num-gpus",
        type=_number,
        default=S,
        help="logical GPUs of a new local Ray (testing); default: detect",
    )
    return p


def parse_settings(argv: list[str] | None = None) -> SweepSettings:
    """Flags → validated :class:`SweepSettings`; raises :class:`UsageError` (one line).

    ``--config FILE`` reads flags from a TOML file first; flags on the command line win.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    config = vars(parser.parse_args(argv)).get("config")
    if config is not None:
        from_file = config_file_args(config)
        try:
            parser.parse_args(from_file)
        except UsageError as err:
            raise UsageError(f"--config {config}: {err}") from None
        argv = from_file + argv
    args = vars(parser.parse_args(argv))
    args.pop("config", None)
    preset = args.pop("preset")
    values = {**PRESETS[preset], **args}
    # A cluster sets its shared defaults once, in the environment (see cluster/gpu.yaml).
    for key, variable in ENV_DEFAULTS.items():
        if key not in values and os.environ.get(variable):
            values[key] = os.environ[variable]
    settings = SweepSettings(preset=preset, **values)
    validate(settings)
    return settings


def config_file_args(path: str) -> list[str]:
    """A TOML file of settings → the equivalent flags, e.g. ``num-samples = 24`` →
    ``--num-samples 24``; ``beta-range = [1, 8]`` → ``--beta-range 1,8``."""
    import tomllib

    file = Path(path)
    if not file.is_file():
        fail(f"--config: got {path!r}; allowed: an existing TOML file of settings")
    try:
        table = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        fail(f"--config {path}: not valid TOML ({err})")
    known = {
        a.option_strings[0][2:]: a
        for a in build_parser()._actions
        if a.option_strings and a.dest not in ("help", "config")
    }
    args: list[str] = []
    for key, value in table.items():
        name = key.replace("_", "-")
        if name not in known:
            fail(f"--config {path}: unknown setting {key!r}; allowed: {', '.join(sorted(known))}")
        if name == "resume":
            if value not in (True, False, "auto"):
                fail(f'--config {path}: {key}: got {value!r}; allowed: true, false or "auto"')
            args += [] if value is False else ["--resume"] if value is True else ["--resume", value]
        elif isinstance(known[name], argparse._StoreTrueAction):
            if not isinstance(value, bool):
                fail(f"--config {path}: {key}: got {value!r}; allowed: true or false")
            args += [f"--{name}"] if value else []
        elif (
            isinstance(value, list)
            and len(value) == 2
            and not any(isinstance(v, list | dict) for v in value)
        ):
            args += [f"--{name}", f"{value[0]},{value[1]}"]
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            args += [f"--{name}", str(value)]
        else:
            fail(
                f"--config {path}: {key}: got {value!r}; allowed: a string, a number, or "
                "[LOW, HIGH] for a range"
            )
    return args
