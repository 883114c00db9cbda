"""MLflow records of a sweep: one parent run, one nested child run per Tune trial.

Logging happens on the driver, in a Tune ``Callback``, so trials never talk to the tracking
server (one writer for a sqlite store; no credentials on workers). The callback is thin: it
turns each Tune event into a record and hands it to ``sweeps.tracking.writer.MLflowWriter``,
which writes it on a thread of its own, so MLflow never blocks Tune's loop. The writer's
trial → run map, last logged steps and ended trials are saved in Tune's experiment state
(``get_state``/``set_state``), so a resumed sweep writes into the same runs. When the
experiment ends the callback reconciles: every trial Tune has ended whose end MLflow has not
recorded (an outage, or a driver killed meanwhile) is recorded then, and it waits for the
writer to finish.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from ray.tune import Callback

from analysis.redaction import redact
from sweeps.config import live
from sweeps.tracking.runs import last_line
from sweeps.tracking.writer import FINAL_KEYS, MLflowWriter

logger = logging.getLogger(__name__)
_KEPT = ("step", "final", "error", "node_id", *FINAL_KEYS)


class MLflowTracking(Callback):
    """Tune callback: nested MLflow runs per trial, curves, final metrics, artifacts.

    The arguments (``patience_s``, ``spool_path``, ``background``, …) are ``MLflowWriter``'s.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        parent_run_id: str,
        **options: Any,
    ) -> None:
        self.writer = MLflowWriter(tracking_uri, experiment, parent_run_id, **options)

    # -- state Tune saves with the experiment ------------------------------------------
    def get_state(self) -> dict:
        return self.writer.get_state()

    def set_state(self, state: dict) -> None:
        self.writer.set_state(state)

    # -- Tune events -----------------------------------------------------------------------
    @staticmethod
    def _record(op: str, trial: Any, **extra: Any) -> dict[str, Any]:
        return {
            "op": op,
            "trial_id": trial.trial_id,
            "name": str(trial),
            "config": dict(trial.config),
            **extra,
        }

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.writer.reopen(trial.trial_id)
        self.writer.submit(self._record("start", trial))

    on_trial_restore = on_trial_start

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.writer.submit(self._record("result", trial, result=kept_result(result)))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = self._record("complete", trial, result=kept_result(trial.last_result))
        self.writer.submit(record, checkpoint=trial.checkpoint)
        self._submit_scores()

    def _submit_scores(self) -> None:
        """Scores the searcher computed across a setting's seeds (UDR), for their runs."""
        scores = live.take_scores()
        if scores:
            self.writer.submit({"op": "scores", "trial_id": "", "name": "", "scores": scores})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.writer.submit(self._record("error", trial, reason=error_reason(trial)))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        """Record every ended trial MLflow has not recorded as ended, then wait for all."""
        interrupted = live.LIVE.signal is not None
        for trial in trials:
            if trial.trial_id in self.writer.ended:
                continue
            result = trial.last_result or {}
            ended = result.get("final") or result.get("error")
            if interrupted and not ended and trial.status in ("TERMINATED", "RUNNING", "PAUSED"):
                # A signal stopped it (Tune marks such trials TERMINATED as it cleans up, but
                # its saved state keeps them running): KILLED until --resume reopens the run.
                self.writer.submit(self._record("interrupted", trial))
            elif trial.status == "TERMINATED":
                self.on_trial_complete(0, trials, trial)
            elif trial.status == "ERROR":
                self.on_trial_error(0, trials, trial)
        self._submit_scores()
        if self.writer.pending():
            logger.warning("waiting for MLflow to take %d queued records", self.writer.pending())
        if not self._flush():
            logger.error(
                "MLflow at %s did not take %d queued records; what they held is recorded by the "
                "next --resume (curves back-filled from checkpoints, ended trials reconciled)",
                redact(self.writer.tracking_uri), self.writer.pending(),
            )  # fmt: skip
        self.writer.back_up()
        if self.writer.abandoned:
            names = ", ".join(sorted(self.writer.abandoned))
            raise RuntimeError(
                f"MLflow at {redact(self.writer.tracking_uri)} did not record the end of trial(s) "
                f"{names}; run the sweep again with --resume once it answers"
            )

    def _flush(self) -> bool:
        """Wait for the writer: at most its patience plus a minute (a record's end is retried
        for ``patience_s``), 30 s when a signal stopped the sweep, and no longer once a signal
        comes during the wait, so that ``ray job stop``'s SIGTERM ends the driver within its
        grace (the next --resume records what was left). True when everything was sent."""
        signal_before = live.LIVE.signal
        wait_s = 30.0 if signal_before else self.writer.patience_s + 60.0
        deadline = time.monotonic() + wait_s
        while not self.writer.flush(timeout=1.0):
            if time.monotonic() > deadline or live.LIVE.signal != signal_before:
                return False
        return True


def kept_result(result: dict | None) -> dict[str, Any]:
    """What MLflow gets of a result: curves, scores and the few keys read back."""
    return {
        k: v for k, v in (result or {}).items() if k.startswith(("train/", "metric.")) or k in _KEPT
    }


def error_reason(trial: Any) -> str:
    """Why a Tune trial failed: the exception line of its error (best effort)."""
    error = None
    with contextlib.suppress(Exception):  # the reason is best effort; the status is not
        error = trial.get_error()
    return last_line(error) if error else "trial failed"
