"""The Tuner of a sweep: new, with the searcher and the callbacks built in plain sight, or
restored from the sweep folder with the ones the sweep's first driver built.

Imports Ray: the driver imports this module once its environment switches are set
(``sweeps.driver.run``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ray import tune

from analysis.redaction import redact
from analysis.schema import SPOOL_FILE
from sweeps.config.settings import PROG, SweepSettings
from sweeps.driver._renamed import alias_renamed_modules
from sweeps.driver.lost import tell_or_fail
from sweeps.driver.parent import ParentRun, run_source_tags
from sweeps.driver.progress import Progress
from sweeps.driver.scheduler import FinishedPrefixFIFO
from sweeps.driver.snapshot import (
    align_search_state,
    newest_snapshot,
    restore_named_checkpoints,
)
from sweeps.driver.stall import StallWatch
from sweeps.search.plan import build_searcher
from sweeps.search.study import StudyLink
from sweeps.store.folder import SweepFolder
from sweeps.tracking.callback import MLflowTracking
from sweeps.trial.config import TrialConfig
from sweeps.trial.trainable import train_trial

#: Checkpoints kept per trial (see ``tune_environment``).
KEEP_CHECKPOINTS = 4
#: MLflow's HTTP timeout per try and retries, for the sweep's calls (``tune_environment``).
MLFLOW_HTTP_TIMEOUT_S = 30
MLFLOW_HTTP_RETRIES = 3


def tune_environment() -> None:
    """Tune's and MLflow's switches, set before either is used."""
    # Intermediate results carry curves; the searched metric exists only in the final one.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Tune's experiment snapshot keeps its "auto" period (≤ ~5% of the driver's time, however
    # many trials it holds); a snapshot naming a checkpoint deleted since is mended before a
    # resume (sweeps.driver.snapshot).
    # The driver prints its own one line per trial and the experiment's address at the end;
    # MLflow's per-run links and artifact progress bars would drown Tune's table.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # One MLflow call to a hung server takes at most MLFLOW_HTTP_REQUEST_TIMEOUT seconds per
    # try: with MLflow's defaults (120 s, 7 retries with back-off) up to ~20 minutes, with these
    # ~2 minutes. The writer retries a trial's end for its own 15 minutes (patience_s) and
    # skips curve points meanwhile (back-filled later), so its waits stay bounded.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(MLFLOW_HTTP_TIMEOUT_S))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(MLFLOW_HTTP_RETRIES))


#: Sweeps of more trials than this run without Tune's table: at its end Tune prints it with
#: every trial (10,000 rows at 10,000 trials); the driver's one line per trial stays.
TUNE_TABLE_MAX_TRIALS = 50


def tune_verbosity(num_samples: int) -> int:
    """Tune's ``verbose``: 1 (its status table) for sweeps up to ``TUNE_TABLE_MAX_TRIALS``."""
    return 1 if num_samples <= TUNE_TABLE_MAX_TRIALS else 0


def trial_constants(settings: SweepSettings) -> dict[str, Any]:
    """The part of every trial's config the search does not choose."""
    return {
        "steps": settings.steps,
        "batch_size": settings.batch_size,
        "model": settings.model,
        "dataset": settings.dataset,
        "lr": settings.lr,
        "report_every": settings.report_every,
        "checkpoint_every": settings.checkpoint_every,
        "metrics": list(settings.evaluated_metrics),
        "metric_mode": settings.metric_mode,
        "eval_images": settings.eval_images,
        "recon_budget": settings.recon_budget,
        "cpus_per_trial": settings.cpus_per_trial,
    }


def trial_name(trial: Any) -> str:
    """Tune's trial name and folder: ``b4-z10-s0-<id>`` or ``C25-g100-z10-s0-<id>``."""
    return TrialConfig.from_tune(trial.config).dirname(trial.trial_id)


def mend_before_restore(settings: SweepSettings, folder: SweepFolder) -> None:
    """Before a resume, what a killed driver left in Tune's snapshot is put right: checkpoints
    it names that are gone (``sweeps.driver.snapshot``), a search generator that counted trials
    the snapshot lacks, and those trials (``sweeps.driver.lost``). A mend that fails says so
    and the resume goes on without it."""
    try:
        snapshot = newest_snapshot(*folder.filesystem())
        restore_named_checkpoints(*folder.filesystem(), snapshot)
    except Exception as err:  # a snapshot this cannot read: Tune's own restore decides
        print(f"{PROG}: warning: Tune's snapshot was not checked for deleted checkpoints "
              f"({type(err).__name__}: {err})", file=sys.stderr)  # fmt: skip
        return
    if snapshot is None:
        return
    mends = (
        ("Tune's search generator was not checked against its snapshot",
         lambda: align_search_state(*folder.filesystem(), snapshot)),
        ("trials Tune's snapshot does not hold were not checked",
         lambda: tell_or_fail(settings, folder, snapshot)),
    )  # fmt: skip
    for unchecked, mend in mends:
        try:
            mend()
        except Exception as err:  # the resume goes on; what it checks stays as it was
            print(f"{PROG}: warning: {unchecked} ({type(err).__name__}: {redact(str(err))})",
                  file=sys.stderr)  # fmt: skip


def build_tuner(
    settings: SweepSettings, folder: SweepFolder, parent: ParentRun, backup: Any
) -> tune.Tuner:
    """The sweep's Tuner: restored when ``--resume`` finds Tune's state, else new."""
    trainable = tune.with_resources(
        train_trial, {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
    )
    storage_path, experiment_path = folder.tune_paths()
    if settings.resume and tune.Tuner.can_restore(experiment_path):
        alias_renamed_modules()  # a sweep started before the subpackages names the old paths
        mend_before_restore(settings, folder)
        # A trial that ended in ERROR (a worker lost too often, a checkpoint that would not
        # load) is retried from its last checkpoint; a diverged one reported its end.
        return tune.Tuner.restore(
            experiment_path, trainable, resume_unfinished=True, resume_errored=True
        )
    return tune.Tuner(
        trainable,
        param_space=trial_constants(settings),
        tune_config=tune.TuneConfig(
            search_alg=build_searcher(
                settings,
                folder.study_location,
                parent_run_id=parent.run_id,
                sweep_dir=folder.shown,
            ),
            num_samples=settings.num_samples,
            max_concurrent_trials=settings.max_concurrent,
            # Tune's FIFO choice, minus a walk over every finished trial at each step.
            scheduler=FinishedPrefixFIFO(),
            # A trial's worker goes on to the next trial: no new process, no imports, the
            # dataset already built (sweeps.trial.trainable.dataset_of).
            reuse_actors=True,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=storage_path,
            callbacks=[
                Progress(settings.metric_key, settings.num_samples),
                StallWatch(settings.stall_timeout, prog=PROG),
                MLflowTracking(
                    settings.tracking_uri,
                    parent.experiment,
                    parent.run_id,
                    backup=backup,
                    study_link=StudyLink(folder.study_location, settings.name),
                    run_tags=run_source_tags(),
                    spool_path=folder.study_path.with_name(SPOOL_FILE),
                ),
            ],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            verbose=tune_verbosity(settings.num_samples),
        ),
    )
