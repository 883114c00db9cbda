"""Sweep β-VAEs for the disentanglement / reconstruction frontier.

    python sweeps/beta_frontier.py                      # cpu preset, local Ray, sqlite MLflow
    python sweeps/beta_frontier.py --preset smoke       # a 1-minute end-to-end check
    ray submit cluster/gpu.yaml sweeps/beta_frontier.py -- --preset paper

Ray Tune runs the trials (``--cpus-per-trial``, fractional ``--gpus-per-trial``), Optuna's TPE
samples β-objective and capacity-objective settings and maximises ``--metric`` subject to
``recon_nll ≤ --recon-budget`` (or searches the whole Pareto front with ``--objective
pareto``), MLflow records one parent run and one child run per trial. Every value is
validated before Ray starts; ``--resume`` continues an interrupted sweep.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from sweeps.command_line import parse_settings
from sweeps.preflight import (
    check_local_resources,
    check_shared_storage,
    check_tracking_server,
    ray_address,
    start_ray,
)
from sweeps.settings import PROG, SweepSettings, UsageError, exit_on_usage_error
from sweeps.storage import (
    SETTINGS_FILE,
    SUMMARY_FILE,
    check_sweep_folder,
    copy_report,
    download_study,
    report_dir,
    study_path,
    upload_study,
    write_text,
)

#: Checkpoints kept per trial (see the snapshot note in ``run``).
KEEP_CHECKPOINTS = 4


# -- the search ----------------------------------------------------------------------------
def build_searcher(settings: SweepSettings):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from sweeps.search import ConstrainedOptunaSearch
    from sweeps.space import SearchSpace

    path = study_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    pareto = settings.objective == "pareto"
    space = SearchSpace(
        settings.steps,
        tuple(settings.latent_dim_range),
        settings.seed,
        tuple(settings.beta_range),
    )
    # A preset's starting points outside a narrowed --beta-range / --latent-dims are dropped.
    initial = [dict(p) for p in settings.initial_points if space.contains(p)]
    return ConstrainedOptunaSearch(
        space=space,
        metric=[settings.metric_key, "recon_nll"] if pareto else settings.metric_key,
        mode=["max", "min"] if pareto else "max",
        # TPE samples at random for its first trials: half the sweep, at most Optuna's 10.
        sampler=optuna.samplers.TPESampler(
            seed=settings.seed, n_startup_trials=max(1, min(10, settings.num_samples // 2))
        ),
        study_name=settings.name,
        storage=JournalStorage(JournalFileBackend(str(path))),
        points_to_evaluate=initial or None,
        recon_budget=settings.recon_budget,
        constrained=not pareto,
        replicates=settings.replicates,
        max_trials=settings.num_samples,
    )


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
        "recon_budget": settings.recon_budget,
        "cpus_per_trial": settings.cpus_per_trial,
    }


def trial_name(trial: Any) -> str:
    c = trial.config
    if c.get("objective") == "capacity":
        what = f"C{c['capacity_max']:.3g}-g{c['gamma']:.3g}"
    elif c.get("objective") == "beta":
        what = f"b{c['beta']:.3g}"
    else:
        what = "trial"
    return f"{what}-z{c.get('latent_dim')}-s{c.get('seed')}-{trial.trial_id}"


def parent_tags(settings: SweepSettings) -> dict[str, str]:
    from sweeps.tracking import git_commit

    return {
        "preset": settings.preset,
        "objective": settings.objective,
        "metric": settings.metric_key,
        "recon_budget": str(settings.recon_budget),
        "search": json.dumps(settings.search_settings(), sort_keys=True),
        "sampler": "optuna.TPESampler",
        "git_commit": git_commit(),
    }


def run(settings: SweepSettings) -> dict[str, Any]:
    """Run (or resume) the sweep; returns the summary that ``main`` prints."""
    check_sweep_folder(settings)
    address = ray_address(settings)  # looked up once: it scans for running clusters
    check_local_resources(settings, address)
    check_tracking_server(settings)
    # Intermediate results carry curves; the searched metric exists only in the final one.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Tune snapshots its experiment state every 10 s by default, in the background; old trial
    # checkpoints are deleted as new ones register. A driver killed in between left a state
    # that pointed at a deleted checkpoint, and --resume then failed that trial (seen in CI:
    # "Could not recover from checkpoint as it does not exist on storage anymore"). A snapshot
    # every second plus the last KEEP_CHECKPOINTS checkpoints keeps the one it names on disk.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    import ray
    from mlflow.tracking import MlflowClient
    from ray import tune

    from sweeps.tracking import MLflowTracking, experiment_id, parent_run
    from sweeps.trainable import train_trial

    start_ray(settings, address)
    try:
        check_shared_storage(settings)
        client = MlflowClient(settings.tracking_uri)
        experiment = experiment_id(client, settings.name)
        parent = parent_run(
            client,
            experiment,
            settings.experiment_path,
            run_name=settings.name,
            tags=parent_tags(settings),
            params=settings.to_dict(),
        )
    except BaseException:
        ray.shutdown()
        raise
    if not settings.resume:
        write_text(
            settings,
            SETTINGS_FILE,
            json.dumps(
                {"search": settings.search_settings(), "settings": settings.to_dict()}, indent=2
            ),
        )
    else:
        download_study(settings)
    try:
        trainable = tune.with_resources(
            train_trial, {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial}
        )
        if settings.resume and tune.Tuner.can_restore(settings.experiment_path):
            tuner = tune.Tuner.restore(
                settings.experiment_path, trainable, resume_unfinished=True, resume_errored=False
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=trial_constants(settings),
                tune_config=tune.TuneConfig(
                    search_alg=build_searcher(settings),
                    num_samples=settings.num_samples,
                    max_concurrent_trials=settings.max_concurrent,
                    trial_name_creator=trial_name,
                    trial_dirname_creator=trial_name,
                ),
                run_config=tune.RunConfig(
                    name=settings.name,
                    storage_path=settings.storage_root,
                    callbacks=[MLflowTracking(settings.tracking_uri, experiment, parent)],
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
                    failure_config=tune.FailureConfig(max_failures=2),
                    verbose=1,
                ),
            )
        grid = tuner.fit()
        summary = summarise(settings, grid)
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
            print(f"{PROG}: warning: the Optuna journal was not copied: {err}", file=sys.stderr)
    summary["parent_run_id"] = parent
    summary["report"] = write_sweep_report(settings, client, parent)
    write_text(settings, SUMMARY_FILE, json.dumps(summary, indent=2))
    client.log_dict(parent, summary, SUMMARY_FILE)
    for key in ("trials_completed", "trials_failed", "trials_feasible"):
        client.log_metric(parent, key, summary[key])
    if summary["best"]:
        client.log_metric(
            parent, f"best.{settings.metric_key}", summary["best"]["metrics"][settings.metric_key]
        )
    client.set_terminated(parent, status="FINISHED")
    return summary


def write_sweep_report(settings: SweepSettings, client: Any, parent: str) -> str | None:
    """Write the frontier report, copy it to remote sweep storage, log it to the parent run.

    A failure here is reported, not raised: the trials and their runs are already safe.
    """
    from analysis.report import write_report
    from analysis.runs import load_mlflow

    out = report_dir(settings)
    try:
        write_report(load_mlflow(settings.tracking_uri, settings.name, parent), out)
        if not settings.storage_is_local:
            copy_report(settings, out)
        client.log_artifacts(parent, str(out), "report")
    except Exception as err:
        print(f"{PROG}: warning: the frontier report failed: {err}", file=sys.stderr)
        client.set_tag(parent, "report_error", f"{type(err).__name__}: {err}"[:5000])
        return None
    return str(out / "report.html")


# -- results ---------------------------------------------------------------------------------
SEARCHED = ("objective", "beta", "capacity_max", "anneal_fraction", "gamma", "latent_dim", "seed")


def summarise(settings: SweepSettings, grid: Any) -> dict[str, Any]:
    """Completed trials, the best feasible one and the frontier (metric ↑, recon_nll ↓)."""
    import numpy as np

    from analysis.pareto import pareto_mask
    from analysis.runs import is_finite

    key = settings.metric_key
    rows, failed = [], []
    for result in grid:
        metrics = result.metrics or {}
        config = {k: result.config.get(k) for k in SEARCHED if k in result.config}
        trial_id = metrics.get("trial_id") or (result.path or "").rsplit("-", 1)[-1]
        if result.error is not None or metrics.get("error") or not metrics.get("final"):
            reason = metrics.get("error") or (str(result.error).splitlines() or ["?"])[-1]
            failed.append({"trial_id": trial_id, "config": config, "error": reason})
            continue
        scores = {
            k: v
            for k, v in metrics.items()
            if k.startswith("metric.") or k in ("recon_nll", "kl", "active_latents")
        }
        rows.append(
            {
                "trial_id": trial_id,
                "config": config,
                "metrics": scores,
                "feasible": bool(metrics.get("feasible")),
            }
        )
    scored = [r for r in rows if is_finite(r["metrics"].get(key))]
    front = []
    if scored:
        values = np.array([[r["metrics"][key], r["metrics"]["recon_nll"]] for r in scored])
        mask = pareto_mask(values, maximize=[True, False])
        front = sorted(
            (r for r, m in zip(scored, mask, strict=True) if m),
            key=lambda r: r["metrics"]["recon_nll"],
        )
    feasible = [r for r in scored if r["feasible"]]
    best = max(feasible, key=lambda r: r["metrics"][key]) if feasible else None
    return {
        "sweep": settings.name,
        "metric": key,
        "objective": settings.objective,
        "recon_budget": settings.recon_budget,
        "trials_completed": len(rows),
        "trials_failed": len(failed),
        "trials_feasible": len(feasible),
        "best": best,
        "frontier": front,
        "failed": failed,
    }


def _describe(config: dict[str, Any]) -> str:
    if config.get("objective") == "capacity":
        return (
            f"capacity C_max={config['capacity_max']:.1f} γ={config['gamma']:.0f} "
            f"anneal={config['anneal_fraction']:.2f}"
        )
    return f"beta β={config.get('beta', float('nan')):.2f}"


def format_summary(summary: dict[str, Any]) -> str:
    key = summary["metric"]
    lines = [
        f"sweep {summary['sweep']!r}: {summary['trials_completed']} trials completed, "
        f"{summary['trials_feasible']} within the budget recon_nll <= "
        f"{summary['recon_budget']:g} nats, {summary['trials_failed']} failed"
    ]
    best = summary["best"]
    if best:
        c = best["config"]
        lines.append(
            f"best feasible: {key} = {best['metrics'][key]:.3f}, recon_nll = "
            f"{best['metrics']['recon_nll']:.1f} ({_describe(c)}, "
            f"{c['latent_dim']} latents, seed {c['seed']}, trial {best['trial_id']})"
        )
    else:
        lines.append("best feasible: none (no completed trial is within the budget)")
    if summary["frontier"]:
        lines.append(f"frontier ({key} ↑, recon_nll ↓):")
        lines.append(f"  {'recon_nll':>9}  {key:>22}  {'feasible':>8}  setting")
        for r in summary["frontier"]:
            c = r["config"]
            lines.append(
                f"  {r['metrics']['recon_nll']:9.1f}  {r['metrics'][key]:22.3f}  "
                f"{'yes' if r['feasible'] else 'no':>8}  {_describe(c)}, "
                f"z={c['latent_dim']}, seed {c['seed']}"
            )
    for f in summary["failed"]:
        lines.append(f"failed: trial {f['trial_id']}: {f['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = parse_settings(argv)
        summary = run(settings)
    except UsageError as err:
        exit_on_usage_error(err)
    print(format_summary(summary))
    if summary.get("report"):
        print(f"report: {summary['report']}")
    mlflow = Path(sys.executable).parent / "mlflow"
    if mlflow.is_relative_to(Path.cwd()):
        mlflow = mlflow.relative_to(Path.cwd())
    print(f"MLflow UI: {mlflow} ui --backend-store-uri {settings.tracking_uri} --host 127.0.0.1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
