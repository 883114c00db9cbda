"""Start or continue: a new sweep must not exist yet; a resumed one must exist and keep the
search it started with (``sweep.json``)."""

from __future__ import annotations

import dataclasses
import json

from analysis.schema import SETTINGS_FILE
from sweeps.config.flags import flag
from sweeps.config.settings import SweepSettings, UsageError
from sweeps.store.folder import SweepFolder


def decide_resume(settings: SweepSettings, folder: SweepFolder) -> SweepSettings:
    """``settings`` checked against the sweep folder, with ``--resume auto`` decided: True
    when the sweep exists. Raises :class:`UsageError` (one line) otherwise."""
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
    before = json.loads(saved)["search"]
    now = settings.search_settings()
    # A setting newer than the sweep is compared with its default: what the sweep ran with.
    defaults = SweepSettings(preset=settings.preset).search_settings()
    for key in now:
        started = before.get(key, defaults[key])
        if started != now[key]:
            raise UsageError(
                f"{flag(key)}: the sweep was started with {started!r}, got {now[key]!r}; "
                "a resumed sweep keeps its search settings (start a new --name to change them)"
            )
    return settings
