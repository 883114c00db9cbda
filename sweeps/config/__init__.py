"""A sweep's configuration: the settings, the presets, every flag described once, and the
checks a value meets before anything starts. Light: no Ray, MLflow or torch."""

from sweeps.config.command_line import config_file_args, parse_settings
from sweeps.config.flags import FLAGS, Flag, build_parser, flag
from sweeps.config.presets import BUDGET_BASIS, GAMMA_BASIS, PAPER_BUDGET, PRESETS
from sweeps.config.settings import (
    ENV_DEFAULTS,
    FAMILIES,
    PROG,
    SEARCH_METRICS,
    SweepSettings,
    UsageError,
    exit_on_usage_error,
    scoring,
    storage_is_local,
    sweep_record,
)
from sweeps.config.validation import check_paths, check_values, validate

__all__ = [
    "BUDGET_BASIS",
    "ENV_DEFAULTS",
    "FAMILIES",
    "FLAGS",
    "GAMMA_BASIS",
    "PAPER_BUDGET",
    "PRESETS",
    "PROG",
    "SEARCH_METRICS",
    "Flag",
    "SweepSettings",
    "UsageError",
    "build_parser",
    "check_paths",
    "check_values",
    "config_file_args",
    "exit_on_usage_error",
    "flag",
    "parse_settings",
    "scoring",
    "storage_is_local",
    "sweep_record",
    "validate",
]
