"""The name a command was started by, for its usage and error lines."""

from __future__ import annotations

import sys
from pathlib import Path


def program_name(default: str) -> str:
    """``betavae-sweep`` (…) when started through an installed command, else ``default``."""
    started_as = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return started_as if started_as.startswith("betavae-") else default
