"""A tracking server that goes away: what the writer (``sweeps.tracking.writer``) skips with
one warning per outage, and what it retries until its patience runs out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from analysis.redaction import redact
from sweeps.tracking.runs import last_line

logger = logging.getLogger(__name__)


class OutageWatch:
    """One warning when MLflow at ``tracking_uri`` starts failing, one when it answers again."""

    def __init__(self) -> None:
        self.since: float | None = None  # when the current outage began (monotonic)

    def best_effort(self, tracking_uri: str, what: str, action: Callable[[], Any]) -> bool:
        """Run ``action``; if MLflow fails, warn (once per outage) and go on. False: it failed."""
        try:
            action()
        except Exception as err:
            if self.since is None:
                self.since = time.monotonic()
                logger.warning(
                    "MLflow at %s failed (%s: %s); the sweep goes on, and each trial's curves "
                    "are back-filled from its checkpoint when it ends",
                    redact(tracking_uri),
                    what,
                    redact(last_line(str(err))),
                )
            return False
        if self.since is not None:
            logger.warning(
                "MLflow at %s answers again after %.0f s",
                redact(tracking_uri),
                time.monotonic() - self.since,
            )
            self.since = None
        return True


def patiently(
    tracking_uri: str,
    what: str,
    action: Callable[[], Any],
    *,
    patience_s: float,
    retry_every_s: float,
) -> None:
    """Run ``action`` until it succeeds or ``patience_s`` has passed (then raise)."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            action()
            return
        except Exception as err:
            if time.monotonic() >= deadline:
                raise
            logger.warning(
                "MLflow at %s failed (%s: %s); retrying for up to %.0f s more",
                redact(tracking_uri),
                what,
                redact(last_line(str(err))),
                deadline - time.monotonic(),
            )
            time.sleep(retry_every_s)
