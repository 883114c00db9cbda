"""Lazy public names for a subpackage whose modules import Ray, MLflow, Optuna or torch: the
package's ``__init__`` lists them and their modules, and a name's module is imported on first
use (PEP 562), so importing one light module of the package imports none of the heavy ones."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, where: dict[str, str], modules: tuple[str, ...] = ()
) -> Callable[[str], Any]:
    """The package's ``__getattr__``: ``where`` maps each public name to its module (relative
    to ``package``); ``modules``: public submodules, imported on first use too."""

    def __getattr__(name: str) -> Any:
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)

    return __getattr__
