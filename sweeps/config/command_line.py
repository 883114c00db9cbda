"""The sweep's command line: flags and ``--config`` files → validated settings, before Ray
starts.

Every value a user can pass is checked (``sweeps.config.validation``) before anything starts, so a
typo costs one line on stderr and exit code 2, not a Ray cluster start-up followed by failed
trials.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from betavae.catalogue import spec_has_factors
from sweeps.config.flags import SHOWN_PRESET, build_parser
from sweeps.config.presets import PRESETS
from sweeps.config.settings import ENV_DEFAULTS, UDR_MIN_SEEDS, SweepSettings, UsageError
from sweeps.config.validation import fail, validate


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
    explicit = frozenset(args)
    preset = args.pop("preset", SHOWN_PRESET)
    values = {**PRESETS[preset], **args}
    # A cluster sets its shared defaults once, in the environment (see cluster/gpu.yaml).
    for key, variable in ENV_DEFAULTS.items():
        if key not in values and os.environ.get(variable):
            values[key] = os.environ[variable]
    if "metric" not in args and not spec_has_factors(values.get("dataset", "dsprites")):
        values["metric"] = "udr"  # the score of a sweep on images without factors
    udr = values.get("metric") == "udr"
    if udr and "replicates" not in args and values.get("replicates", 1) < UDR_MIN_SEEDS:
        values["replicates"] = UDR_MIN_SEEDS  # UDR scores a setting's seeds together
    settings = SweepSettings(preset=preset, explicit=explicit, **values)
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
