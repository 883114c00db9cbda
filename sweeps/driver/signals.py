"""SIGINT and SIGTERM to the driver: stop the sweep gracefully, the same way for both.

Tune stops its loop cleanly on SIGINT and SIGUSR1 (it saves the experiment state one last
time and returns), but SIGTERM, which ``ray job stop``, Kubernetes and batch schedulers send,
kills the driver outright: no journal upload, the parent run left RUNNING. ``Interrupts``
catches both signals, remembers which one came, and hands the stop to Tune's own handler.
The driver then ends the parent run as KILLED, writes no final report, and exits 128 + the
signal's number; ``--resume`` continues the sweep. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

from sweeps.config import live

#: Tune installs its own SIGINT handler unless this is set; ours forwards to it instead.
TUNE_SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"
CAUGHT = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """Installed for the driver's life (``with Interrupts() as stop: …``).

    The signal's name also goes to ``sweeps.config.live.LIVE.signal``, where the callbacks
    read it: a resumed sweep runs the callbacks Tune unpickles from the first driver's state,
    not ones that could hold this object.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[int, Any] = {}
        self.in_tune = False

    @property
    def name(self) -> str | None:
        return self.received.name if self.received else None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.received) if self.received else 0

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt  # the second signal: stop now
        self.received = signal.Signals(signum)
        live.LIVE.signal = self.received.name
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if self.in_tune and callable(tune_stop):  # let Tune's loop stop and save its state
            tune_stop(signum, frame)
        else:  # before or after Tune's loop: unwind like Ctrl+C
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def tune_loop(self) -> Iterator[None]:
        """Around ``Tuner.fit``: a signal then stops Tune's loop instead of unwinding."""
        self.in_tune = True
        try:
            yield
        finally:
            self.in_tune = False

    def install(self) -> None:
        """(Re)take both signals: ``ray.init`` puts its own SIGTERM handler in (it aborts the
        driver), so the driver calls this again once Ray is up."""
        for sig in CAUGHT:
            previous = signal.signal(sig, self._handle)
            self._previous.setdefault(sig, previous)

    def __enter__(self) -> Interrupts:
        os.environ[TUNE_SIGINT_ENV] = "1"
        self.install()
        live.LIVE.signal = None
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        live.LIVE.signal = None
