"""MLflow for a sweep: the Tune callback that turns trial events into records, the writer that
sends them on a thread of its own (through a spool), rides out a server's outage (``outage``),
ends each run (``run_end``) and prunes each finished trial's folder (``finished_run``), the
runs found or created by tag, the trained model, the sqlite store's
backup, and MLflow compared with Tune.

Names are imported on first use: MLflow and Ray load only when they are needed.
"""

from sweeps._lazy import lazy_exports

_WHERE = {
    "MLflowTracking": "callback",
    "MLflowWriter": "writer",
    "FINAL_KEYS": "writer",
    "Spool": "spool",
    "BackupRefused": "backup",
    "DatabaseBackup": "backup",
    "backup_uri": "backup",
    "restore": "backup",
    "experiment_id": "runs",
    "find_runs": "runs",
    "git_commit": "runs",
    "last_line": "runs",
    "log_trained_model": "runs",
    "parent_run": "runs",
    "source_tags": "runs",
    "trial_params": "runs",
    "missing_in_mlflow": "reconcile",
    "mlflow_children": "reconcile",
    "tune_ends": "reconcile",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_exports(__name__, _WHERE)
