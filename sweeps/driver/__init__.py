"""The driver: one run of a sweep from the checks to the report (``run.run``), and the two
commands that start no trial (``dry_run.dry_run``, ``rebuild.rebuild``); the command imports
each from its module.

Names are imported on first use: Ray, MLflow and torch load only once the flags are checked.
"""

from sweeps._lazy import lazy_exports

_WHERE = {
    "ParentRun": "parent",
    "trial_constants": "tuner",
    "trial_name": "tuner",
    "build_tuner": "tuner",
    "Interrupts": "signals",
    "StallWatch": "stall",
    "Progress": "progress",
    "FinishedPrefixFIFO": "scheduler",
}
#: The entry points are modules of the same name as their function (``run.run``, …).
_ENTRY_POINTS = ("dry_run", "rebuild", "run")
__all__ = sorted([*_WHERE, *_ENTRY_POINTS])
__getattr__ = lazy_exports(__name__, _WHERE, _ENTRY_POINTS)
