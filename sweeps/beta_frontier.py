"""Sweep β-VAEs for the disentanglement / reconstruction frontier.

    python sweeps/beta_frontier.py                      # cpu preset, local Ray, sqlite MLflow
    python sweeps/beta_frontier.py --preset smoke       # a 1-minute end-to-end check
    ray submit cluster/gpu.yaml sweeps/beta_frontier.py -- --preset paper

Ray Tune runs the trials (``--cpus-per-trial``, fractional ``--gpus-per-trial``), Optuna
samples β-objective and capacity-objective settings (at random: the plan measured best,
``sweeps.search_plan``) to maximise ``--metric`` subject to ``recon_nll ≤ --recon-budget`` (or
to search the whole Pareto front with ``--objective pareto``), MLflow records one parent run
and one child run per trial. Every value is validated before Ray starts; ``--resume``
continues an interrupted sweep.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from analysis.redaction import redact
from analysis.schema import (
    OPTUNA_STUDY_TAG,
    SCORING_TAG,
    SETTINGS_FILE,
    SPOOL_FILE,
    SUMMARY_FILE,
)
from sweeps.command_line import parse_settings
from sweeps.interrupts import Interrupts
from sweeps.preflight import (
    bind_to_loopback,
    check_cluster_placement,
    check_local_resources,
    check_shared_storage,
    check_tracking_server,
    ray_address,
    start_ray,
)
from sweeps.search_plan import (
    SAMPLER_CLASSES,
    build_searcher,
    initial_points,
    search_plan,
    search_space,
)
from sweeps.settings import (
    PROG,
    SweepSettings,
    UsageError,
    exit_on_usage_error,
    scoring,
    sweep_record,
)
from sweeps.storage import (
    check_sweep_folder,
    download_study,
    storage_credentials,
    study_path,
    tune_storage,
    upload_study,
    write_text,
)
from sweeps.sweep_end import (
    close_errored_trials,
    compare_with_mlflow,
    interrupted,
    summarise,
)

#: Checkpoints kept per trial (see the snapshot note in ``run``).
KEEP_CHECKPOINTS = 4


# -- the search: sweeps.search_plan ----------------------------------------------------------
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
    from sweeps.trial_config import TrialConfig

    return TrialConfig.from_tune(trial.config).dirname(trial.trial_id)


def run_source_tags() -> dict[str, str]:
    """MLflow's source tags of this sweep's runs: the command and the checkout's commit."""
    from sweeps.mlflow_runs import git_commit, source_tags

    return source_tags(git_commit(), PROG)


def parent_tags(settings: SweepSettings) -> dict[str, str]:
    from sweeps.mlflow_runs import git_commit

    protocol = scoring(settings)
    return {
        **run_source_tags(),
        "preset": settings.preset,
        "objective": settings.objective,
        "metric": settings.metric_key,
        "recon_budget": str(settings.recon_budget),
        "search": json.dumps(settings.search_settings(), sort_keys=True),
        "sampler": f"optuna.{SAMPLER_CLASSES[search_plan(settings).sampler]}",
        OPTUNA_STUDY_TAG: settings.name,
        "git_commit": git_commit(),
        "metric_mode": str(protocol["mode"]),
        "dci_predictor": str(protocol["predictor"]),
        SCORING_TAG: json.dumps(protocol, sort_keys=True),
    }


def open_parent_run(settings: SweepSettings) -> tuple[Any, str, str]:
    """``(client, experiment id, parent run id)``: the sweep's parent run, found by its sweep
    folder's tag or created (the driver and ``--rebuild-mlflow`` share it)."""
    from mlflow.tracking import MlflowClient

    from sweeps.mlflow_runs import experiment_id, parent_run

    client = MlflowClient(settings.tracking_uri)
    experiment = experiment_id(client, settings.name)
    parent = parent_run(
        client,
        experiment,
        settings.shown_experiment_path,
        run_name=settings.name,
        tags=parent_tags(settings),
        params=settings.to_dict(),
    )
    return client, experiment, parent


def dry_run(settings: SweepSettings) -> dict[str, Any]:
    """What ``--dry-run`` prints: the sweep as it would start, its space and its size."""
    from sweeps.settings import BUDGET_BASIS, PRESETS

    space = search_space(settings)
    record = sweep_record(settings)
    record["settings"].pop("dry_run", None)
    budget_given = settings.recon_budget != PRESETS[settings.preset]["recon_budget"]
    return {
        "sweep": record,
        "search_space": space.describe(),
        "initial_points": initial_points(settings, space),
        "search_plan": search_plan(settings).to_dict(),
        "trials": settings.num_samples,
        "settings_sampled": -(-settings.num_samples // settings.replicates),
        "seeds_per_setting": settings.replicates,
        "training_images": settings.num_samples * settings.steps * settings.batch_size,
        "recon_budget": {
            "nats": settings.recon_budget,
            "basis": "given by --recon-budget" if budget_given else BUDGET_BASIS[settings.preset],
        },
    }


def run(settings: SweepSettings) -> dict[str, Any]:
    """Run (or resume) the sweep, holding its driver lease; returns what ``main`` prints."""
    from sweeps.driver_lock import DriverLease

    with Interrupts() as interrupts:
        lease = DriverLease(settings)
        lease.check()  # a live driver is named before anything else is said about the sweep
        settings = check_sweep_folder(settings)
        return _run(settings, interrupts, lease)


def _run(settings: SweepSettings, interrupts: Interrupts, lease: Any) -> dict[str, Any]:
    address = ray_address(settings)  # looked up once: it scans for running clusters
    if address == "local":
        bind_to_loopback()  # before Ray is imported: Ray reads the switch then
    check_local_resources(settings, address)
    check_tracking_server(settings)
    try:
        return _run_held(settings, interrupts, address, lease)
    finally:
        lease.release()  # a no-op if it was never taken


def _run_held(
    settings: SweepSettings, interrupts: Interrupts, address: str | None, lease: Any
) -> dict[str, Any]:
    # Intermediate results carry curves; the searched metric exists only in the final one.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Tune snapshots its experiment state every 10 s by default, in the background; old trial
    # checkpoints are deleted as new ones register. A driver killed in between left a state
    # that pointed at a deleted checkpoint, and --resume then failed that trial (seen in CI:
    # "Could not recover from checkpoint as it does not exist on storage anymore"). A snapshot
    # every second plus the last KEEP_CHECKPOINTS checkpoints keeps the one it names on disk.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # The driver prints its own one line per trial and the experiment's address at the end;
    # MLflow's per-run links and artifact progress bars would drown Tune's table.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import ray
    from ray import tune

    from sweeps.mlflow_backup import configure as configure_backup
    from sweeps.progress import Progress
    from sweeps.search import StudyLink
    from sweeps.stall import StallWatch
    from sweeps.stall import configure as configure_stall_watch
    from sweeps.tracking import MLflowTracking
    from sweeps.trainable import train_trial

    credentials = storage_credentials(settings)  # out of the URI Tune sees (sweeps.storage)
    os.environ.update(credentials)
    start_ray(settings, address, env_vars=credentials)
    interrupts.install()  # after ray.init, which installs a SIGTERM handler that aborts
    try:
        check_shared_storage(settings)
        check_cluster_placement(settings, address)
        lease.acquire()  # after every check: a refused sweep writes nothing
        backup = database_backup(settings)
        client, experiment, parent = open_parent_run(settings)
    except BaseException:
        ray.shutdown()
        raise
    if not settings.resume:
        write_text(settings, SETTINGS_FILE, json.dumps(sweep_record(settings), indent=2))
    else:
        download_study(settings)
    try:
        trainable = tune.with_resources(
            train_trial, {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
        )
        storage_path, experiment_path = tune_storage(settings)
        if settings.resume and tune.Tuner.can_restore(experiment_path):
            # A trial that ended in ERROR (a worker lost too often, a checkpoint that would not
            # load) is retried from its last checkpoint; a diverged one reported its end.
            tuner = tune.Tuner.restore(
                experiment_path,
                trainable,
                resume_unfinished=True,
                resume_errored=True,
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=trial_constants(settings),
                tune_config=tune.TuneConfig(
                    search_alg=build_searcher(settings, parent),
                    num_samples=settings.num_samples,
                    max_concurrent_trials=settings.max_concurrent,
                    # A trial's worker goes on to the next trial: no new process, no imports,
                    # the dataset already built (sweeps.trainable.dataset_of).
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
                            experiment,
                            parent,
                            backup=backup,
                            study_link=StudyLink(str(study_path(settings)), settings.name),
                            run_tags=run_source_tags(),
                            spool_path=study_path(settings).with_name(SPOOL_FILE),
                        ),
                    ],
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
                    failure_config=tune.FailureConfig(max_failures=settings.max_failures),
                    verbose=1,
                ),
            )
        # A restored Tuner runs the callbacks pickled by the sweep's first driver: this
        # driver's own settings reach them through their modules (sweeps.stall,
        # sweeps.mlflow_backup, sweeps.interrupts), not through the objects built above.
        configure_stall_watch(settings.stall_timeout)
        configure_backup(backup)
        with interrupts.tune_loop():
            grid = tuner.fit()
    except BaseException as err:
        client.set_tag(parent, "error", f"{type(err).__name__}: {err}"[:5000])
        client.set_terminated(
            parent, status="KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        )
        raise
    finally:
        ray.shutdown()
        try:
            upload_study(settings)
        except Exception as err:  # the trials are safe; only the bucket's copy is missing
            print(
                f"{PROG}: warning: the Optuna journal was not copied: {redact(str(err))}",
                file=sys.stderr,
            )
    if interrupts.received:
        return interrupted(settings, client, parent, grid, interrupts, experiment)
    close_errored_trials(settings, grid)
    missing = compare_with_mlflow(client, experiment, parent, grid)
    doc, report = summarise(settings, client, parent, grid, from_tune=bool(missing))
    write_text(settings, SUMMARY_FILE, json.dumps(doc, indent=2, default=str))
    client.log_dict(parent, json.loads(json.dumps(doc, default=str)), SUMMARY_FILE)
    counts = doc["counts"]
    client.log_metric(parent, "trials_finished", counts["finished"])
    client.log_metric(parent, "trials_failed", counts["failed"])
    client.log_metric(parent, "settings_feasible", counts["feasible_settings"])
    if doc["best_feasible"]:
        median = doc["best_feasible"]["metric"]["median"]
        client.log_metric(parent, f"best.{settings.metric_key}.median", median)
    client.set_terminated(parent, status="FINISHED")
    return {
        "document": doc,
        "report": report,
        "parent_run_id": parent,
        "experiment_id": experiment,
        "mlflow_missing": missing,
    }


def database_backup(settings: SweepSettings):
    """The sqlite store's backup in the sweep's storage (``sweeps.mlflow_backup``), restored
    first when this machine lacks the database (a new head); None when not configured."""
    from analysis.redaction import without_credentials
    from sweeps.mlflow_backup import DatabaseBackup, restore

    database = settings.mlflow_backup_file
    if database is None:
        return None
    root = without_credentials(settings.storage_root)  # the writer is pickled into Tune's state
    if settings.tracking_uri.startswith("sqlite:///") and restore(root, database):
        print(f"{PROG}: restored the MLflow database {database} from its backup", file=sys.stderr)
    return DatabaseBackup(database, root)


def main(argv: list[str] | None = None) -> int:
    from analysis.frontier import format_summary

    try:
        settings = parse_settings(argv)
        if settings.dry_run:
            print(json.dumps(dry_run(settings), indent=2))
            return 0
        if settings.rebuild_mlflow:
            from sweeps.reconcile import rebuild

            done = rebuild(settings)
            print(
                f"{done['trials']} trials in Tune's state; MLflow held {done['runs_before']} of "
                f"their runs and now holds {done['runs_after']}"
            )
            print(mlflow_ui_lines(settings.tracking_uri, done["experiment_id"]))
            return 0
        outcome = run(settings)
    except UsageError as err:
        exit_on_usage_error(err)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; continue the sweep with --resume", file=sys.stderr)
        return 130
    if "interrupted" in outcome:
        stop = outcome["interrupted"]
        print(
            f"{PROG}: stopped by {stop.name} with {outcome['finished']} of "
            f"{settings.num_samples} trials finished; nothing is lost: continue with "
            f"--name {settings.name} --resume (no report until the sweep ends)",
            file=sys.stderr,
        )
        print(mlflow_ui_lines(settings.tracking_uri, outcome["experiment_id"]))
        return stop.exit_code
    print(format_summary(outcome["document"]))
    if outcome["report"]:
        print(f"report: {outcome['report']}")
    print(mlflow_ui_lines(settings.tracking_uri, outcome["experiment_id"]))
    if outcome["mlflow_missing"]:
        shown = ", ".join(
            f"{t} ({tune}; MLflow: {ml})" for t, tune, ml in outcome["mlflow_missing"]
        )
        print(
            f"{PROG}: WARNING: MLflow does not hold {len(outcome['mlflow_missing'])} trial(s) as "
            f"Tune ended them: {shown}. The report above was built from Tune's results. Rebuild "
            f"the runs with: {PROG} --name {settings.name} --storage-path "
            f"{redact(settings.storage_path)} --tracking-uri {redact(settings.tracking_uri)} "
            "--rebuild-mlflow",
            file=sys.stderr,
        )
        return 3
    if not outcome["document"]["counts"]["finished"]:
        # Everything is recorded (failed trials with their reasons), but a scheduler or a
        # script must not mistake an empty frontier for a result.
        print(f"{PROG}: no trial finished: see the failed trials above", file=sys.stderr)
        return 1
    return 0


def mlflow_ui_lines(tracking_uri: str, experiment: str) -> str:
    """Where to browse the sweep: the experiment's runs table (and the command to serve it).

    MLflow 3.17's UI picks its GenAI or model-training view from the URL's ``workflowType``
    (else the browser's last choice, GenAI at first), not from the experiment's kind tag.
    """
    page = f"#/experiments/{experiment}?workflowType=machine_learning"
    tracking_uri = redact(tracking_uri)
    if tracking_uri.startswith(("http://", "https://")):
        return f"MLflow: {tracking_uri.rstrip('/')}/{page}"
    mlflow = Path(sys.executable).parent / "mlflow"
    if mlflow.is_relative_to(Path.cwd()):
        mlflow = mlflow.relative_to(Path.cwd())
    return (
        f"MLflow UI: {mlflow} ui --backend-store-uri {tracking_uri} --host 127.0.0.1 --port 5000\n"
        f"  then open http://127.0.0.1:5000/{page}"
    )


if __name__ == "__main__":
    sys.exit(main())
