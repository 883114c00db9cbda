"""Writes a sweep's trial records into MLflow, in order, on a thread of its own.

The Tune callback (``sweeps.tracking.callback``) turns each event into a JSON record and hands
it to :class:`MLflowWriter`, which queues it in a :class:`~sweeps.tracking.spool.Spool` (bounded
in memory, overflowing to a file) and returns at once: a slow, hung or absent tracking server
never stalls Tune's loop, so the trials keep training. The writer's thread drains the records
in order:

- ``start``: find or create the trial's child run (by tag, so never twice; a trial this
  driver's searcher created has none yet and is not searched for) and mark it RUNNING;
- ``result``: log a curve point (each step once) or the final scores; if MLflow fails, the
  point is skipped with one warning per outage: the trial's curve is back-filled from its
  checkpoint's ``history.jsonl`` when it ends;
- ``complete`` / ``error``: back-fill (the checkpoint's curve points beyond those this
  driver logged; MLflow's curve is read only for a run it did not log whole), final scores,
  artifacts, the model, the dataset, the status; retried for up to ``patience_s`` seconds,
  then given up loudly (``abandoned``) and redone by the next driver: ``MLflowTracking``
  reconciles every ended trial that MLflow has not recorded as ended.

``background=False`` handles each record in the caller's thread instead (tests, tools).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from analysis.redaction import redact, without_credentials
from analysis.schema import (
    ERROR_TAG,
    NODE_TAG,
    OPTUNA_TRIAL_KEY,
    OPTUNA_TRIAL_TAG,
    PARENT_TAG,
    ROLE_TAG,
    SETTING_TAG,
    TRIAL_ID_TAG,
    setting_id,
)
from analysis.trial_files import expand_curve
from sweeps.config import live
from sweeps.tracking.finished_run import prune
from sweeps.tracking.outage import OutageWatch, patiently
from sweeps.tracking.run_end import FEASIBLE_TAG, MAX_TAG, backfill, ended, fail, log_artifacts
from sweeps.tracking.runs import find_runs, last_line, log_seed_scores, trial_params
from sweeps.tracking.spool import UNREADABLE, Spool

logger = logging.getLogger(__name__)
#: Final-result keys logged as metrics besides every ``metric.*`` score.
FINAL_KEYS = ("recon_nll", "kl", "active_latents", "feasible", "eval_seconds")
_ENDS = ("complete", "error")


def default_spool_path(parent_run_id: str) -> Path:
    """Where a driver's overflowing records go: a file of its own per parent run."""
    key = hashlib.sha256(parent_run_id.encode()).hexdigest()[:16]
    return Path.home() / ".betavae" / "spool" / f"{key}.jsonl"


class MLflowWriter:
    """The trial runs of one sweep: records in, MLflow calls out (see the module doc)."""

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        parent_run_id: str,
        *,
        patience_s: float = 900.0,
        retry_every_s: float = 5.0,
        study_link: Any = None,
        run_tags: dict[str, str] | None = None,
        spool_path: str | Path | None = None,
        memory_limit: int = 1000,
        background: bool = True,
        backup: Any = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.parent_run_id = parent_run_id
        self.patience_s = patience_s
        self.retry_every_s = retry_every_s
        self.study_link = study_link  # (optuna trial number, run id) → the study's record
        self.run_tags = dict(run_tags or {})  # set on every child run (its source, …)
        self.spool_path = Path(spool_path or default_spool_path(parent_run_id))
        self.memory_limit = memory_limit
        self.background = background
        self.backup = backup  # sweeps.tracking.backup.DatabaseBackup: copied as trials end
        self.runs: dict[str, str] = {}  # trial id → run id
        self.last_step: dict[str, int] = {}
        self.ended: set[str] = set()  # trials whose end MLflow has recorded
        self.abandoned: dict[str, str] = {}  # trial id → why its end could not be recorded
        self._start_process()

    def _start_process(self) -> None:
        """What belongs to one driver process: never pickled into Tune's state, and started
        afresh in the process that restores a writer (whatever version pickled it)."""
        self._checkpoints: dict[str, Any] = {}  # trial id → its last Tune checkpoint
        self._client: MlflowClient | None = None
        self._synced: set[str] = set()  # trials whose MLflow state this process has read
        # The curve steps this process logged, per trial whose run it created: a trial's end
        # back-fills what its checkpoint holds beyond them without reading the curve back
        # from MLflow (a read per trial that grew with the store). After a failed write, or
        # for a run an earlier driver made, MLflow's own curve is read instead.
        self._logged_steps: dict[str, set[int]] = {}
        self._failed_writes: set[str] = set()  # trials a write to MLflow failed for
        self._unsure: set[str] = set()  # trials whose run creation failed: it may exist
        self._outage = OutageWatch()
        self._lock = threading.Lock()
        self._spool: Spool | None = None
        self._thread: threading.Thread | None = None
        self._followed = False

    def __getstate__(self) -> dict:
        # Nothing pickled holds a credential (Tune writes this into the sweep folder): the
        # driver that restores the sweep hands its own URI over (``follow``).
        process = object.__new__(type(self))
        process._start_process()  # the fields it sets are this process's: not kept
        kept = {k: v for k, v in self.__dict__.items() if k not in process.__dict__}
        return {**kept, "tracking_uri": without_credentials(self.tracking_uri)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._start_process()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    # -- what Tune saves with its experiment ---------------------------------------------
    def get_state(self) -> dict:
        with self._lock:
            return {
                "runs": dict(self.runs),
                "last_step": dict(self.last_step),
                "ended": sorted(self.ended),
                "parent_run_id": self.parent_run_id,
                # the store these runs are in (without credentials)
                "tracking_uri": without_credentials(self.tracking_uri),
                "experiment": self.experiment,
            }

    def set_state(self, state: dict) -> None:
        with self._lock:
            if "tracking_uri" in state:  # the store of the last driver, maybe not the first's
                self.tracking_uri = state["tracking_uri"]
                self.experiment = state.get("experiment", self.experiment)
                self.parent_run_id = state.get("parent_run_id", self.parent_run_id)
            self.runs.update(state.get("runs", {}))
            for trial_id, step in state.get("last_step", {}).items():
                self.last_step[trial_id] = max(step, self.last_step.get(trial_id, -1))
            self.ended |= set(state.get("ended", ()))
        self.follow(live.tracking())

    def follow(self, tracking: tuple[str, str, str] | None) -> None:
        """Write where this driver's MLflow store is: ``(tracking URI, experiment id, parent run
        id)`` (``sweeps.config.live``; None: keep this writer's own). The same store gets its
        URI back with the credentials; another store (a new ``--tracking-uri``, an older
        backup restored, a relative sqlite path from another folder) gets the runs found
        there again by tag or written anew, every ended trial recorded again at the end."""
        self._followed = True
        if tracking is None:
            return
        uri, experiment, parent = tracking
        moved = (without_credentials(uri), experiment, parent) != (
            without_credentials(self.tracking_uri), self.experiment, self.parent_run_id
        )  # fmt: skip
        with self._lock:
            if moved:
                logger.warning(
                    "the sweep's MLflow store is %s (experiment %s, parent run %s), not %s "
                    "(experiment %s, parent run %s): its runs are found there by tag or written "
                    "again", redact(uri), experiment, parent, redact(self.tracking_uri),
                    self.experiment, self.parent_run_id,
                )  # fmt: skip
                self.experiment, self.parent_run_id = experiment, parent
                for known in (self.runs, self.last_step, self.abandoned):
                    known.clear()
                self.ended.clear()
                self._synced.clear()
            self.tracking_uri = uri
            self._client = None

    # -- the queue -------------------------------------------------------------------------
    def submit(self, record: dict[str, Any], checkpoint: Any = None) -> None:
        """Queue a record (see the module doc); ``checkpoint``: the trial's, for its end."""
        if not self._followed:
            self.follow(live.tracking())
        if checkpoint is not None:
            self._checkpoints[record["trial_id"]] = checkpoint
        if not self.background:
            self._handle(record, raise_on_give_up=True)
            return
        if self._thread is None:
            self._start()
        assert self._spool is not None
        self._spool.put(record)

    def _start(self) -> None:
        if self.spool_path.exists():  # a previous driver's unsent records
            logger.warning(
                "dropping %s, the MLflow records a previous driver had not sent: curves are "
                "back-filled from checkpoints and ended trials reconciled",
                self.spool_path,
            )
            self.spool_path.unlink()
        self._spool = Spool(self.spool_path, self.memory_limit)
        self._thread = threading.Thread(target=self._drain, name="mlflow-writer", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self._spool is not None
        while True:
            try:
                record = self._spool.get()
            except Exception:  # never let the queue stop the writer (the flush would wait)
                logger.error("the MLflow spool could not be read: %s", traceback.format_exc())
                time.sleep(1.0)
                continue
            try:
                if record is not None:
                    self._handle(record, raise_on_give_up=False)
            except Exception:  # never let one record stop the writer
                logger.error(
                    "MLflow record %s of %s could not be handled: %s",
                    record.get("op") if record else None,
                    record.get("name") if record else None,
                    redact(traceback.format_exc()),
                )
            finally:
                self._spool.done()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record is handled; False if ``timeout`` came first."""
        if self._spool is None:
            return True
        return self._spool.join(timeout)

    def pending(self) -> int:
        return len(self._spool) if self._spool is not None else 0

    # -- records -------------------------------------------------------------------------
    def _handle(self, record: dict[str, Any], *, raise_on_give_up: bool) -> None:
        op = record["op"]
        if op == "start":
            self._best_effort("marking a run RUNNING", lambda: self._reopen(record))
        elif op == "interrupted":
            self._best_effort(
                "marking a run KILLED",
                lambda: self.client.set_terminated(self.run_id(record), status="KILLED"),
            )
        elif op == "result":
            if not self._best_effort("logging a result", lambda: self._log_result(record)):
                self._failed_writes.add(record["trial_id"])
        elif op == "scores":
            self._best_effort("logging scores across seeds", lambda: self._log_scores(record))
        elif op == UNREADABLE:  # its trial's curve is back-filled, its end reconciled
            logger.warning("an unreadable MLflow record was dropped: %r", record.get("line"))
        elif op in _ENDS:
            if record["trial_id"] in self.ended:
                return
            action = self._complete if op == "complete" else self._fail_record
            try:
                patiently(
                    self.tracking_uri,
                    f"ending the run of {record['name']}",
                    lambda: action(record),
                    patience_s=self.patience_s,
                    retry_every_s=self.retry_every_s,
                )
            except Exception as err:
                if raise_on_give_up:
                    raise
                self.abandoned[record["trial_id"]] = redact(last_line(str(err)))
                logger.error(
                    "MLflow did not record the end of %s within %.0f s (%s); the next "
                    "--resume records it",
                    record["name"],
                    self.patience_s,
                    redact(last_line(str(err))),
                )
                return
            with self._lock:
                self.ended.add(record["trial_id"])
                self.abandoned.pop(record["trial_id"], None)
            self._logged_steps.pop(record["trial_id"], None)  # a retry reads MLflow's curve
            self._failed_writes.discard(record["trial_id"])
            self.back_up()

    def back_up(self, *, final: bool = False) -> None:
        """Copy the sqlite store to the sweep's folder (``sweeps.tracking.backup``), if set: at
        most once per its interval, unless ``final``."""
        backup = live.backup(self.backup)
        if backup is None:
            return
        try:
            backup.copy(final=final)
        except Exception as err:  # the store itself is fine; only its copy is late
            logger.warning("the MLflow database was not backed up: %s", redact(str(err)))

    def run_id(self, record: dict[str, Any]) -> str:
        """The trial's child run: remembered, else found by tag, else created (a trial this
        driver's searcher created is not searched for: ``live.created_here``).

        The first time this driver process meets a trial, the last step already in MLflow
        counts too: the saved state can be older than what was logged before a crash.
        """
        trial_id, config = record["trial_id"], record["config"]
        if trial_id in self._synced:
            return self.runs[trial_id]
        run_id = self.runs.get(trial_id)
        # A trial this driver's searcher created has no run yet, unless creating it failed
        # (a timeout the server may still have carried out).
        if run_id is None and (trial_id in self._unsure or not live.created_here(trial_id)):
            found = find_runs(
                self.client,
                self.experiment,
                **{TRIAL_ID_TAG: trial_id, PARENT_TAG: self.parent_run_id},
            )
            run_id = found[0].info.run_id if found else None
            if found and not found[0].data.params:  # created just before an outage
                self._log_params(run_id, config)
        if run_id is not None:
            history = self.client.get_metric_history(run_id, "train/loss")
            logged = max((m.step for m in history), default=-1)
            with self._lock:
                self.last_step[trial_id] = max(logged, self.last_step.get(trial_id, -1))
        else:
            self._unsure.add(trial_id)
            run_id = self._create_run(record)
            self._unsure.discard(trial_id)
            self._logged_steps[trial_id] = set()
        self._synced.add(trial_id)
        with self._lock:
            self.runs[trial_id] = run_id
        return run_id

    def _create_run(self, record: dict[str, Any]) -> str:
        config = record["config"]
        tags = {
            **self.run_tags,
            PARENT_TAG: self.parent_run_id,
            TRIAL_ID_TAG: record["trial_id"],
            ROLE_TAG: "trial",
            SETTING_TAG: setting_id(config),
        }
        number = config.get(OPTUNA_TRIAL_KEY)
        if number is not None:
            tags[OPTUNA_TRIAL_TAG] = str(number)
        run = self.client.create_run(self.experiment, run_name=record["name"], tags=tags)
        run_id = run.info.run_id
        self._log_params(run_id, config)
        if number is not None and self.study_link is not None:
            try:
                self.study_link(int(number), run_id)
            except Exception as err:  # the link is a convenience; the runs are not
                logger.warning(
                    "Optuna trial %s not linked to run %s: %s", number, run_id, redact(str(err))
                )
        return run_id

    def _log_params(self, run_id: str, config: dict[str, Any]) -> None:
        params = trial_params(config)
        self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])

    def _log_result(self, record: dict[str, Any]) -> None:
        result, trial_id = expand_curve(record["result"]), record["trial_id"]
        run_id = self.run_id(record)
        step = int(result.get("step", 0))
        now = int(time.time() * 1000)
        if result.get("final"):
            keys = [k for k in result if k.startswith("metric.") or k in FINAL_KEYS]
        elif step > self.last_step.get(trial_id, -1):
            keys = [k for k in result if k.startswith("train/")]
        else:
            return
        metrics = [
            Metric(k, float(result[k]), now, step)
            for k in keys
            if isinstance(result[k], int | float)
        ]
        tags = [RunTag(NODE_TAG, str(result["node_id"]))] if result.get("node_id") else []
        if metrics or tags:
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
        if not result.get("final"):
            with self._lock:
                self.last_step[trial_id] = step
            if trial_id in self._logged_steps:
                self._logged_steps[trial_id].add(step)

    def _log_scores(self, record: dict[str, Any]) -> None:
        """Scores computed across a setting's seeds (``metric.udr``), each at the step of the
        number of seeds behind it, into the runs of the trials they score."""
        for trial_id, scores in record["scores"].items():
            log_seed_scores(self.client, self.experiment, self.parent_run_id, trial_id, scores,
                            run_id=self.runs.get(trial_id))  # fmt: skip

    def record_unfinished(self, record: dict[str, Any], checkpoint: Any) -> None:
        """A trial Tune has not ended (``--rebuild-mlflow``): its run, the curve its newest
        checkpoint holds, and KILLED (a ``--resume`` reopens it)."""
        run_id = self.run_id(record)
        if checkpoint is not None:
            backfill(self.client, run_id, checkpoint)
        if not self._already_ended(run_id):
            self.client.set_terminated(run_id, status="KILLED")

    def _reopen(self, record: dict[str, Any]) -> None:
        """A trial (re)started: its run is RUNNING again; a retried failure loses its error."""
        met_before = record["trial_id"] in self._synced
        run_id = self.run_id(record)
        if not met_before and record["trial_id"] in self._logged_steps:
            return  # a run created just now: RUNNING, with no error
        if self.client.get_run(run_id).info.status == "FAILED":
            self.client.delete_tag(run_id, ERROR_TAG)
        self.client.update_run(run_id, status="RUNNING")

    def reopen(self, trial_id: str) -> None:
        """A trial that ended (in ERROR) runs again (``--resume`` retries it): not ended."""
        with self._lock:
            self.ended.discard(trial_id)

    def _already_ended(self, run_id: str) -> bool:
        """An end recorded by an earlier driver (the status is the last thing written)."""
        return ended(self.client.get_run(run_id))

    def _complete(self, record: dict[str, Any]) -> None:
        run_id = self.run_id(record)
        # Read once: what ending the run changes after this, this code writes itself.
        run = self.client.get_run(run_id)
        if ended(run):  # as ``_already_ended``
            return
        result = record.get("result") or {}
        if result.get("error"):
            self._fail(run_id, str(result["error"]))
            return
        checkpoint = self._checkpoints.get(record["trial_id"])
        if checkpoint is not None:
            backfill(self.client, run_id, checkpoint, self._known_steps(record["trial_id"]))
        # (the back-fill logs ``train/`` points only: the run's scores are as read above)
        if result.get("final") and not any(k.startswith("metric.") for k in run.data.metrics):
            self._log_result(record)  # the final result met an outage
        if checkpoint is not None:
            try:
                model_id = log_artifacts(self.client, self.tracking_uri, run, checkpoint)
            except Exception as err:  # the run keeps its metrics; say what is missing
                logger.warning("artifacts of %s not logged: %s", record["name"], redact(str(err)))
                self.client.set_tag(run_id, "artifacts_error", redact(str(err))[:MAX_TAG])
            else:  # before FINISHED (``finished_run.prune``)
                prune(self.client, checkpoint, model_id, run.info.artifact_uri, record["name"])
        self.client.set_tag(run_id, FEASIBLE_TAG, str(bool(result.get("feasible"))).lower())
        self.client.set_terminated(run_id, status="FINISHED")

    def _known_steps(self, trial_id: str) -> set[int] | None:
        """The curve steps MLflow holds for the trial, as far as this process knows for sure
        (None: read them from MLflow)."""
        if trial_id in self._failed_writes:  # a write that failed may still have landed
            return None
        return self._logged_steps.get(trial_id)

    def _fail_record(self, record: dict[str, Any]) -> None:
        run_id = self.run_id(record)
        if not self._already_ended(run_id):
            self._fail(run_id, record.get("reason") or "trial failed")

    def _fail(self, run_id: str, reason: str) -> None:
        fail(self.client, run_id, reason)

    def _best_effort(self, what: str, action: Any) -> bool:
        """``action`` through the outage watch: False if MLflow failed (warned once per outage)."""
        return self._outage.best_effort(self.tracking_uri, what, action)
