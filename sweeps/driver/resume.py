"""Start or continue: a new sweep must not exist yet; a resumed one must exist and keep the
search it started with (``sweep.json``).

A resumed sweep is the sweep it was: every setting its command line does not give comes from
its ``sweep.json``, not from today's preset (a preset may change between releases, and the
KubeRay manifest resumes with ``--preset paper --resume auto``). A flag given on the command
line that differs from a search setting the sweep started with is refused; one that only says
how to run (``--max-concurrent``, ``--report-every``, …) is taken.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Any

from analysis.schema import SETTINGS_FILE
from sweeps.config.flags import flag
from sweeps.config.settings import PROG, SweepSettings, UsageError
from sweeps.store.folder import SweepFolder

#: Fields of this command, not of the sweep: a resume takes them from its own command line
#: (``sweep.json`` holds the tracking URI redacted; the rest say where and how to run now; the
#: hung-trial watch, a guard of this driver's, falls back to its default: a resume after a
#: timeout that killed healthy trials must not inherit it).
COMMAND_FIELDS = frozenset(
    {
        "stall_timeout",
        "name",
        "storage_path",
        "tracking_uri",
        "address",
        "mlflow_backup",
        "num_gpus",
        "resume",
        "dry_run",
        "rebuild_mlflow",
        "explicit",
    }
)


def decide_resume(settings: SweepSettings, folder: SweepFolder) -> SweepSettings:
    """``settings`` checked against the sweep folder, with ``--resume auto`` decided: True
    when the sweep exists; a resumed sweep's settings completed from its ``sweep.json``.
    Raises :class:`UsageError` (one line) otherwise."""
    saved = folder.read_text(SETTINGS_FILE)
    if settings.resume == "auto":
        settings = dataclasses.replace(settings, resume=saved is not None)
    if not settings.resume:
        if saved is not None:
            raise UsageError(
                f"--name: sweep {settings.name!r} already exists at {folder.shown}; pass --resume "
                "to continue it, or choose another --name"
            )
        return settings
    if saved is None:
        raise UsageError(f"--resume: no sweep named {settings.name!r} at {folder.shown}")
    record = json.loads(saved)
    refuse_changed_search(settings, record)
    resumed = as_saved(settings, record, keep=COMMAND_FIELDS | settings.explicit)
    say_what_the_sweep_kept(settings, resumed)
    return resumed


def started_search(record: dict[str, Any]) -> dict[str, Any]:
    """The search settings a sweep started with; a setting newer than the sweep (absent from
    its ``sweep.json``) at the settings' own default: what the sweep ran with."""
    defaults = SweepSettings(preset="cpu").search_settings()
    saved = {**record.get("settings", {}), **record.get("search", {})}
    return {key: saved.get(key, default) for key, default in defaults.items()}


def refuse_changed_search(settings: SweepSettings, record: dict[str, Any]) -> None:
    """A search setting (or the preset) given on the command line that differs from the
    sweep's: :class:`UsageError`."""
    started = started_search(record)
    now = settings.search_settings()
    preset = record.get("settings", {}).get("preset")
    if "preset" in settings.explicit and preset is not None and preset != settings.preset:
        raise UsageError(
            f"--preset: the sweep was started with {preset!r}, got {settings.preset!r}; a resumed "
            "sweep keeps its preset (leave --preset out, or start a new --name)"
        )
    for key in now:
        if key in settings.explicit and started[key] != now[key]:
            raise UsageError(
                f"{flag(key)}: the sweep was started with {started[key]!r}, got {now[key]!r}; "
                "a resumed sweep keeps its search settings (start a new --name to change them)"
            )


def as_saved(
    settings: SweepSettings, record: dict[str, Any], keep: frozenset[str]
) -> SweepSettings:
    """``settings`` with every field outside ``keep`` as the sweep's ``sweep.json`` (``record``)
    holds it; a field the sweep did not save keeps its value here."""
    saved = {**record.get("settings", {}), **started_search(record)}
    known = {f.name for f in dataclasses.fields(SweepSettings)}
    values = {k: _from_json(v) for k, v in saved.items() if k in known and k not in keep}
    return dataclasses.replace(settings, **values)


def say_what_the_sweep_kept(asked: SweepSettings, resumed: SweepSettings) -> None:
    """One line on stderr for the settings the resume took from the sweep that this command
    line (its preset) would have set otherwise: what a preset changed since the sweep began."""
    kept = [
        _kept(k, getattr(resumed, k), getattr(asked, k))
        for k in (f.name for f in dataclasses.fields(SweepSettings))
        if k not in COMMAND_FIELDS and getattr(resumed, k) != getattr(asked, k)
    ]
    if kept:
        print(
            f"{PROG}: resuming {resumed.name!r} with the settings it started with: "
            + "; ".join(kept),
            file=sys.stderr,
        )


def _from_json(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _kept(field: str, kept: Any, instead: Any) -> str:
    if field == "initial_points":  # not a flag: only the points that differ, briefly
        return "starting points {} (not {})".format(
            "; ".join(_point(p) for p in kept if p not in instead) or "none",
            "; ".join(_point(p) for p in instead if p not in kept) or "none",
        )
    return f"{flag(field)} {_shown(kept)} (not {_shown(instead)})"


def _point(point: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.items())


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
