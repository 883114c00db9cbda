"""What this driver tells the callbacks Tune unpickles from an earlier driver's state.

A resumed sweep runs the callbacks the sweep's first driver built (Tune restores them from
``tuner.pkl``), not the ones this driver would build: their settings are the first driver's.
The few that must be this driver's reach them here: the stall limit (``--stall-timeout``), the
MLflow database backup, the MLflow store (its URI with credentials, which nothing pickled
holds, and its experiment and parent run), and the signal that is stopping the sweep. One
thing goes the other way, from the searcher to the MLflow callback of the same driver: the UDR
scores of a setting's seeds, as they finish, and the trials it created (no earlier driver made
their MLflow runs, so none is searched for).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Live:
    """Set by the driver; read by ``StallWatch``, ``MLflowWriter`` and ``MLflowTracking``.

    ``None`` in a field the driver has not set means "keep the callback's own value"; the
    ``*_set`` flags tell an explicit None (no backup, the derived stall limit) from unset.
    """

    stall_timeout_s: float | None = None
    stall_timeout_set: bool = False
    backup: Any = None
    backup_set: bool = False
    tracking: tuple[str, str, str] | None = None
    """``(tracking URI, experiment id, parent run id)`` of this driver's MLflow store."""
    signal: str | None = None
    """The signal stopping this driver's sweep ("SIGINT", "SIGTERM"), once one came."""
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    """Tune trial id → scores computed across its setting's seeds, not yet sent to MLflow."""
    created: set[str] = field(default_factory=set)
    """Tune trial ids the searcher created in this driver process."""


LIVE = Live()


def configure(
    *, stall_timeout_s: float | None, backup: Any, tracking: tuple[str, str, str]
) -> None:
    """This driver's ``--stall-timeout``, MLflow backup and MLflow store, for the callbacks
    it runs."""
    LIVE.stall_timeout_s, LIVE.stall_timeout_set = stall_timeout_s, True
    LIVE.backup, LIVE.backup_set = backup, True
    LIVE.tracking = tracking


def stall_timeout(default: float | None) -> float | None:
    return LIVE.stall_timeout_s if LIVE.stall_timeout_set else default


def backup(default: Any) -> Any:
    return LIVE.backup if LIVE.backup_set else default


def tracking() -> tuple[str, str, str] | None:
    return LIVE.tracking


def publish_scores(scores: dict[str, dict[str, float]]) -> None:
    """Scores of finished trials computed by the searcher (``metric.udr``, ``udr.seeds``),
    for the MLflow callback to record; a newer score of a trial replaces one not yet sent."""
    for trial_id, values in scores.items():
        LIVE.scores.setdefault(trial_id, {}).update(values)


def take_scores() -> dict[str, dict[str, float]]:
    """The scores published since the last call."""
    taken, LIVE.scores = LIVE.scores, {}
    return taken


def note_created(trial_id: str) -> None:
    """A trial the searcher created in this driver (``sweeps.search.searcher``)."""
    LIVE.created.add(trial_id)


def created_here(trial_id: str) -> bool:
    """Whether this driver's searcher created the trial: then no earlier driver made its run."""
    return trial_id in LIVE.created
