"""One driver's run of a sweep, in order: the lease checked, start or resume decided, the
local checks, Ray started, the cluster checks, the lease taken, the MLflow backup and parent
run, the sweep folder's files, the Tuner built (``tuner``) and fitted, and the end
(``end.finish``).

Ray is imported only after its switches are set (``bind_to_loopback``, ``tune_environment``):
the modules that import it are imported inside ``_run_held``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from analysis.redaction import redact, without_credentials
from analysis.schema import SETTINGS_FILE
from sweeps.config import live
from sweeps.config.settings import (
    PROG,
    SweepSettings,
    UsageError,
    settings_warnings,
    sweep_record,
)
from sweeps.driver.credentials import keys_in_a_private_file
from sweeps.driver.preflight import (
    bind_to_loopback,
    check_cluster_placement,
    check_local_resources,
    check_shared_storage,
    check_tracking_server,
    ray_address,
    start_ray,
)
from sweeps.driver.resume import decide_resume
from sweeps.driver.signals import Interrupts
from sweeps.store.folder import SweepFolder
from sweeps.store.lease import DriverLease


def run(settings: SweepSettings) -> dict[str, Any]:
    """Run (or resume) the sweep, holding its driver lease; returns what ``main`` prints,
    ``settings`` as resumed among it."""
    folder = SweepFolder(settings.storage_path, settings.name)
    # Storage keys from --storage-path (else the environment's) in a private file for the
    # driver's life, out of Tune's sight (sweeps.driver.credentials).
    from_uri = folder.credentials()
    with Interrupts() as interrupts, keys_in_a_private_file(from_uri):
        lease = DriverLease(folder)
        lease.check()  # a live driver is named before anything else is said about the sweep
        settings = decide_resume(settings, folder)
        if not settings.resume:  # a resumed sweep's were said when it started
            for warning in settings_warnings(settings):
                print(f"{PROG}: warning: {warning}", file=sys.stderr)
        address = ray_address(settings.address)  # looked up once: it reads the processes
        if address == "local":
            bind_to_loopback()  # before Ray is imported: Ray reads the switch then
        check_local_resources(
            address,
            cpus_per_trial=settings.cpus_per_trial,
            gpus_per_trial=settings.gpus_per_trial,
            num_gpus=settings.num_gpus,
        )
        check_tracking_server(settings.tracking_uri)
        if from_uri and address != "local":
            print(
                f"{PROG}: warning: the keys in --storage-path reach this driver only; the "
                "cluster's nodes need their own (an IAM role or instance profile): see "
                "cluster/README.md",
                file=sys.stderr,
            )
        try:
            # The settings it ran with go back with the outcome: a resume completes them.
            return {**_run_held(settings, folder, interrupts, address, lease), "settings": settings}
        finally:
            lease.release()  # a no-op if it was never taken


def _run_held(
    settings: SweepSettings,
    folder: SweepFolder,
    interrupts: Interrupts,
    address: str | None,
    lease: DriverLease,
) -> dict[str, Any]:
    from sweeps.driver.tuner import tune_environment

    tune_environment()
    import ray  # deferred: after the switches above and bind_to_loopback

    from sweeps.driver.end import finish
    from sweeps.driver.parent import ParentRun
    from sweeps.driver.snapshot import prune_old_snapshots, results_without_dataframes
    from sweeps.driver.tuner import build_tuner

    start_ray(address, num_gpus=settings.num_gpus)  # a local Ray inherits the keys' file
    interrupts.install()  # after ray.init, which installs a SIGTERM handler that aborts
    try:
        check_shared_storage(settings.storage_path)
        check_cluster_placement(
            address, cpus_per_trial=settings.cpus_per_trial, gpus_per_trial=settings.gpus_per_trial
        )
        lease.acquire()  # after every check: a refused sweep writes nothing
        backup = database_backup(settings, folder)
        parent = ParentRun.open(settings, folder.shown)
    except BaseException:
        ray.shutdown()
        raise
    if not settings.resume:
        folder.write_text(SETTINGS_FILE, json.dumps(sweep_record(settings), indent=2))
    else:
        folder.download_study()
    try:
        with results_without_dataframes():  # a restored Tuner reads every trial's results
            tuner = build_tuner(settings, folder, parent, backup)
        # A restored Tuner runs the callbacks pickled by the sweep's first driver: this
        # driver's own settings (and its tracking URI's credentials) reach them through
        # sweeps.config.live.
        live.configure(
            stall_timeout_s=settings.stall_timeout,
            backup=backup,
            tracking=(settings.tracking_uri, parent.experiment, parent.run_id),
        )
        with interrupts.tune_loop(), results_without_dataframes():
            grid = tuner.fit()
    except BaseException as err:
        parent.failed(err)
        final_backup(backup)
        raise
    finally:
        ray.shutdown()
        try:
            folder.upload_study()
        except Exception as err:  # the trials are safe; only the bucket's copy is missing
            print(
                f"{PROG}: warning: the Optuna journal was not copied: {redact(str(err))}",
                file=sys.stderr,
            )
        try:
            prune_old_snapshots(*folder.filesystem())
        except Exception as err:  # only storage is lost: Tune restores the newest
            print(f"{PROG}: warning: older Tune snapshots were not deleted: "
                  f"{redact(str(err))}", file=sys.stderr)  # fmt: skip
    try:
        return finish(settings, folder, parent, grid, interrupts)
    finally:
        final_backup(backup)  # after the parent run's end: never skipped by the interval


def database_backup(settings: SweepSettings, folder: SweepFolder):
    """The sqlite store's backup in the sweep's folder (``sweeps.tracking.backup``), restored
    first when this machine lacks the database (a new head); None when not configured."""
    from sweeps.tracking.backup import BackupRefused, DatabaseBackup, restore

    database = settings.mlflow_backup_file
    if database is None:
        return None
    root = without_credentials(folder.root)  # the writer is pickled into Tune's state
    if settings.tracking_uri.startswith("sqlite:///"):
        try:
            restored, line = restore(root, folder.name, database)
        except BackupRefused as err:
            raise UsageError(
                f"{err}; python -m sweeps.tracking.backup restore … --adopt takes it"
            ) from None
        if restored or "--adopt" in line:
            print(f"{PROG}: {line}", file=sys.stderr)
    return DatabaseBackup(database, root, folder.name)


def final_backup(backup) -> None:
    """The sweep's last copy of its sqlite store, whatever the interval (best effort)."""
    if backup is None:
        return
    try:
        backup.copy(final=True)
    except Exception as err:  # the store itself is fine; only its copy is late
        print(
            f"{PROG}: warning: the MLflow database was not backed up: {redact(str(err))}",
            file=sys.stderr,
        )
