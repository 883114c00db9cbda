"""Module paths of the flat ``sweeps/`` layout, for sweeps started before the subpackages.

Tune pickles the searcher, the callbacks and the trial-name function into the sweep folder
(``tuner.pkl``) by module path, and ``Tuner.restore`` loads them by that path. A sweep started
by an older version names the old paths; ``alias_renamed_modules`` makes each one import the
module that holds its classes now. Only the driver restores, so only it needs the aliases
(``tests/e2e/test_legacy_resume.py`` resumes such a sweep).
"""

from __future__ import annotations

import importlib
import sys

#: Old module path → the module that holds its names now. ``sweeps.search`` and
#: ``sweeps.tracking`` are packages now and export their classes themselves.
RENAMED = {
    "sweeps.space": "sweeps.search.space",
    "sweeps.mlflow_writer": "sweeps.tracking.writer",
    "sweeps.mlflow_backup": "sweeps.tracking.backup",
    "sweeps.stall": "sweeps.driver.stall",
    "sweeps.progress": "sweeps.driver.progress",
    # a trial-name function pickled by value imports it when it runs
    "sweeps.trial_config": "sweeps.trial.config",
}


def alias_renamed_modules() -> None:
    """Make every old path in ``RENAMED`` import its module now (idempotent)."""
    for old, new in RENAMED.items():
        sys.modules.setdefault(old, importlib.import_module(new))
