"""What one sweep driver costs per trial at 100, 1,000 and 10,000 trials (issue 25).

    .venv/bin/python bench/sweep_scale.py --trials 100               # ~2 minutes on 2 cores
    nohup nice -n 19 .venv/bin/python bench/sweep_scale.py --trials 1000 10000 \
        --results bench/sweep_scale.jsonl > sweep_scale.log 2>&1 &   # hours: in the background
    .venv/bin/python bench/sweep_scale.py --show --results bench/sweep_scale.jsonl

The real driver runs: ``betavae-sweep`` (``sweeps.beta_frontier.main``) with its Tune
controller, the Optuna searcher, every callback (the progress line, the stall watch, the
MLflow callback and its writer thread), the database backup, the end (Optuna closed, MLflow
compared with Tune, ``summary.json``, the report). Only the trial is a stand-in: a function
trainable that trains nothing and sleeps ``--trial-seconds`` in all, but reports like
``sweeps.trial.trainable.train_trial``: a ``train/…`` curve row (``train/kl_per_dim/NN``
included) every ``report_every`` steps with ``worker_node``, a checkpoint every
``checkpoint_every`` steps holding ``model/`` (a real, untrained model's ``model.safetensors``,
a ``trainer_state.pt`` the size of Adam's two moments, ``config.json``) and ``history.jsonl``,
and a final result (``recon_nll``, ``kl``, ``active_latents``, one ``metric.*`` per evaluated
metric, ``feasible``, ``final``) whose checkpoint adds ``result.json`` and ``artifacts/`` (three
PNGs of the real pictures' shapes and ``trial_config.json``). The MLflow writer logs that
model as the sweep does (``mlflow.pyfunc.log_model``, input example included).

How the stand-in gets in, without a hook in the product: this file is also the driver's
bootstrap (``--driver``, run in a subprocess). It wraps ``sweeps.driver.run.start_ray`` so
that, once Ray is imported (after the driver's own switches), it replaces the name
``train_trial`` in ``sweeps.driver.tuner`` (what ``build_tuner`` hands Tune) with the
stand-in defined here (so cloudpickle ships it to the workers by value), and times Tune's
``TuneController.save_to_dir`` (the experiment snapshot: ``experiment_state-*.json``, the
searcher's and the callbacks' state), ``Tuner.fit`` and every trial's end (through
``Progress.on_trial_complete``). At exit it writes those figures and the process's
``getrusage`` (CPU seconds, peak RSS) to a JSON file.

Per size, in a fresh temporary folder (its own Ray: ``RAY_TMPDIR`` inside it, no
``--address``; sqlite MLflow beside it), removed at the end unless ``--keep``:

1. the sweep: ``--preset smoke --replicates 1 --num-samples N`` (override with ``--sweep-args``);
2. ``python -m analysis.report --tune-dir …`` on the finished sweep, timed;
3. the same sweep command with ``--resume`` on the finished sweep, timed;
4. ``mlflow server`` on loopback over the sweep's database, and the runs table's request
   (``POST /ajax-api/2.0/mlflow/runs/search``: the experiment, ``max_results`` 100,
   ``order_by`` ``attributes.start_time DESC``, active runs, as the UI sends it), timed cold
   and then the median of 5.

Each size is appended as one JSON line to ``--results``; ``--show`` prints the table of a
results file. The table gives, per size: the fit's wall time per trial and its ratio to the
smallest size of the same invocation (ideal: ``--trial-seconds`` / ``--max-concurrent``),
the driver's CPU per trial during the fit, the wall per trial of the first and last fifth of
trial ends, the snapshot (files' size, writes, share of the fit's wall spent writing it),
storage and MLflow artifacts per trial, the Optuna journal and the MLflow database, the
driver's peak RSS, the report's and ``--resume``'s wall times, the runs-table request.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SWEEP_NAME = "scale"
TRIAL_SECONDS_ENV = "SWEEP_SCALE_TRIAL_S"  # the stand-in's total sleep, read on the worker


# -- the stand-in trial (runs on Ray's workers; shipped by value from this __main__) ----------
def train_trial(config: dict[str, Any]) -> None:
    """Reports like ``sweeps.trial.trainable.train_trial`` and trains nothing (see the module
    doc). Named like it: Tune registers a function trainable under its name."""
    import logging
    import random
    import tempfile
    import time
    from pathlib import Path

    import ray
    from ray import tune

    from analysis.trial_files import HISTORY, compact_curve, read_history
    from sweeps.trial.announce import announce_worker
    from sweeps.trial.config import TrialConfig

    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    announce_worker()  # the stall watch knows this worker, as for a real trial
    trial = TrialConfig.from_tune(config)
    history: list[dict[str, Any]] = []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            history = read_history(Path(directory) / HISTORY)
    step = history[-1]["step"] if history else 0
    every = trial.report_every
    pause = float(os.environ.get(TRIAL_SECONDS_ENV, "0.2")) / (-(-trial.steps // every) + 1)
    rng = random.Random(f"{trial.setting}-{trial.seed}")
    where = {"worker_node": ray.get_runtime_context().get_node_id()}
    while step < trial.steps:
        step = min(trial.steps, (step // every + 1) * every)
        time.sleep(pause)
        row = _curve_row(trial, step, rng)
        history.append(row)
        if step % trial.checkpoint_every == 0 or step == trial.steps:
            with tempfile.TemporaryDirectory() as tmp:
                _write_state(trial, history, Path(tmp))
                tune.report(
                    {**compact_curve(row), **where},
                    checkpoint=tune.Checkpoint.from_directory(tmp),
                )
        else:
            tune.report({**compact_curve(row), **where})
    time.sleep(pause)
    _final(trial, history, rng)


def _curve_row(trial: Any, step: int, rng: Any) -> dict[str, Any]:
    """``sweeps.trial.trainable.curve_row``'s keys, made-up values."""
    kl = [rng.uniform(0.0, 3.0) for _ in range(trial.latent_dim)]
    row: dict[str, Any] = {
        "step": step,
        "train/loss": rng.uniform(100.0, 600.0),
        "train/recon_nll": rng.uniform(80.0, 560.0),
        "train/kl": sum(kl),
        "train/images_per_s": rng.uniform(500.0, 3000.0),
    }
    if trial.objective == "capacity":
        row["train/capacity"] = (trial.capacity_max or 0.0) * step / max(1, trial.steps)
    for i, value in enumerate(kl):
        row[f"train/kl_per_dim/{i:02d}"] = value
    return row


def _channels(spec: str) -> int:
    return 3 if spec.startswith(("dsprites-color", "shapes3d")) else 1


def _write_state(trial: Any, history: list[dict[str, Any]], directory: Path) -> None:
    """``sweeps.trial.trainable._write_state``'s files: an untrained real model's weights, a
    training state the size of Adam's moments, the config, the history."""
    import json

    import safetensors.torch
    import torch

    from analysis.trial_files import HISTORY, MODEL_DIR
    from betavae.checkpoint import CONFIG, STATE, WEIGHTS
    from betavae.models import build_model

    config = trial.train_config()
    torch.manual_seed(trial.seed)
    model = build_model(config.model, config.latent_dim, _channels(config.dataset))
    folder = directory / MODEL_DIR
    folder.mkdir(parents=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(weights, str(folder / WEIGHTS))
    moments = {
        i: {"step": torch.tensor(float(history[-1]["step"] if history else 0)),
            "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        for i, p in enumerate(model.parameters())
    }  # fmt: skip
    torch.save({"optimizer": {"state": moments}, "step": len(history)}, folder / STATE)
    (folder / CONFIG).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    (directory / HISTORY).write_text("".join(json.dumps(row) + "\n" for row in history))


def _picture(path: Path, rows: int, columns: int, channels: int, seed: int) -> None:
    """A PNG of ``rows × columns`` 64-pixel frames drawn as ``sweeps.trial.pictures`` does,
    smooth noise for pixels (what a decoder draws compresses about as well)."""
    import torch

    from sweeps.trial.pictures import save_grid

    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(rows * columns, channels, 12, 12, generator=g)
    frames = torch.nn.functional.interpolate(coarse, size=64, mode="bilinear")
    save_grid(frames, path, nrow=columns)


def _final(trial: Any, history: list[dict[str, Any]], rng: Any) -> None:
    """``sweeps.trial.trainable._final``'s result and checkpoint, made-up scores."""
    import json
    import tempfile

    import ray
    from ray import tune

    from analysis.trial_files import ARTIFACTS, RESULT, TRIAL_CONFIG
    from betavae.versions import library_versions

    budget = trial.recon_budget if trial.recon_budget != float("inf") else 130.0
    kl = [rng.uniform(0.0, 3.0) for _ in range(trial.latent_dim)]
    recon = budget * rng.uniform(0.6, 1.3)
    result: dict[str, Any] = {"step": trial.steps, "recon_nll": recon}
    for name in trial.metrics:
        result[f"metric.{name}"] = rng.uniform(0.0, 0.5)
    result.update(
        kl=sum(kl),
        active_latents=float(sum(v > 0.1 for v in kl)),
        feasible=float(trial.feasible(recon)),
        final=1.0,
        node_id=ray.get_runtime_context().get_node_id(),
        eval_seconds=0.0,
    )
    channels = _channels(trial.dataset)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        _write_state(trial, history, directory)
        drawn = directory / ARTIFACTS
        drawn.mkdir()
        _picture(drawn / "traversals.png", trial.latent_dim, 9, channels, trial.seed)
        _picture(drawn / "reconstructions.png", 2, 8, channels, trial.seed + 1)
        _picture(drawn / "kl_per_latent.png", 1, 1, 3, trial.seed + 2)
        (drawn / TRIAL_CONFIG).write_text(
            json.dumps(
                {"trial": trial.as_dict(), "train_config": trial.train_config().to_dict()},
                indent=2,
            )
        )
        (directory / RESULT).write_text(
            json.dumps(
                {
                    **result,
                    "kl_per_dim": kl,
                    "metric_seconds": {},
                    "metric_settings": {},
                    "versions": library_versions(),
                    "input_shape": [channels, 64, 64],
                    "dataset": {
                        "spec": trial.dataset,
                        "name": trial.dataset,
                        "digest": "0123456789abcdef",
                        "images": 737_280,
                        "factors": {"shape": 3, "scale": 6, "orientation": 40, "x": 32, "y": 32},
                    },
                },
                indent=2,
            )
        )
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


# -- the driver's bootstrap (--driver STATS -- SWEEP ARGS) ------------------------------------
def driver(stats_path: Path, argv: list[str]) -> int:
    """``sweeps.beta_frontier.main(argv)`` with the stand-in trial and the timers installed
    once Ray is imported; the figures go to ``stats_path`` at exit."""
    import resource

    import sweeps.driver.run as run_module
    from sweeps.beta_frontier import main

    stats: dict[str, Any] = {"snapshots": 0, "snapshot_s": 0.0, "ends": [], "ends_cpu": [],
             "ends_snapshot_s": []}  # fmt: skip
    started = time.perf_counter()
    original_start_ray = run_module.start_ray

    def start_ray(*args: Any, **kwargs: Any) -> None:
        original_start_ray(*args, **kwargs)
        from ray import tune
        from ray.tune.execution.tune_controller import TuneController

        import sweeps.driver.tuner as tuner_module
        from sweeps.driver.progress import Progress

        tuner_module.train_trial = train_trial  # what build_tuner hands Tune

        save_to_dir = TuneController.save_to_dir

        def timed_save(self: Any) -> None:
            t = time.perf_counter()
            try:
                save_to_dir(self)
            finally:
                stats["snapshots"] += 1
                stats["snapshot_s"] += time.perf_counter() - t

        TuneController.save_to_dir = timed_save

        fit = tune.Tuner.fit

        def timed_fit(self: Any) -> Any:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats["fit_start"] = time.perf_counter() - started
            stats["fit_cpu_start"] = usage.ru_utime + usage.ru_stime
            try:
                return fit(self)
            finally:
                usage = resource.getrusage(resource.RUSAGE_SELF)
                stats["fit_end"] = time.perf_counter() - started
                stats["fit_cpu_end"] = usage.ru_utime + usage.ru_stime
                stats["snapshot_s_in_fit"] = stats["snapshot_s"]

        tune.Tuner.fit = timed_fit

        on_trial_complete = Progress.on_trial_complete

        def timed_end(self: Any, *a: Any, **k: Any) -> Any:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            stats["ends"].append(round(time.perf_counter() - started, 4))
            stats["ends_cpu"].append(round(usage.ru_utime + usage.ru_stime, 4))
            stats["ends_snapshot_s"].append(round(stats["snapshot_s"], 4))
            return on_trial_complete(self, *a, **k)

        Progress.on_trial_complete = timed_end

    run_module.start_ray = start_ray

    def write_stats() -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        stats.update(
            wall_s=time.perf_counter() - started,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_kb=usage.ru_maxrss,
        )
        stats_path.write_text(json.dumps(stats))

    atexit.register(write_stats)
    return main(argv)


# -- one size --------------------------------------------------------------------------------
def _du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict[str, Any]) -> tuple[float, bytes]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    t = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        data = response.read()
    return time.perf_counter() - t, data


def runs_table(folder: Path, database: Path, env: dict[str, str]) -> dict[str, Any]:
    """The MLflow UI's runs-table request against a real ``mlflow server`` on loopback."""
    port = _free_port()
    log = (folder / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server",
         "--backend-store-uri", f"sqlite:///{database}",
         "--artifacts-destination", str(folder / "mlartifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=folder,
        env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )  # fmt: skip
    log.close()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("mlflow server did not start: see its log") from None
                time.sleep(0.5)
        _, data = _post(f"{base}/ajax-api/2.0/mlflow/experiments/search", {"max_results": 100})
        experiments = json.loads(data).get("experiments", [])
        experiment = next(e for e in experiments if e["name"] != "Default")["experiment_id"]
        body = {
            "experiment_ids": [experiment],
            "filter": "",
            "run_view_type": "ACTIVE_ONLY",
            "max_results": 100,
            "order_by": ["attributes.start_time DESC"],
        }
        url = f"{base}/ajax-api/2.0/mlflow/runs/search"
        cold, data = _post(url, body)
        warm = [_post(url, body)[0] for _ in range(5)]
        return {
            "runs_search_cold_s": cold,
            "runs_search_s": statistics.median(warm),
            "runs_search_bytes": len(data),
            "runs_search_rows": len(json.loads(data).get("runs", [])),
        }
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)


def _run(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    t = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.call(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t
    if code != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
        raise RuntimeError(f"{shlex.join(command)} exited {code} after {seconds:.0f} s:\n{tail}")
    return seconds


def measure(trials: int, args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="ss-", dir=args.workdir))  # short: Ray's sockets
    try:
        storage = folder / "ray_results"
        database = folder / "mlflow.db"
        sweep = [
            "--preset", args.preset, "--replicates", "1", "--num-samples", str(trials),
            "--max-concurrent", str(args.max_concurrent), "--name", SWEEP_NAME,
            "--storage-path", str(storage), "--tracking-uri", f"sqlite:///{database}",
            *shlex.split(args.sweep_args),
        ]  # fmt: skip
        env = {
            **os.environ,
            "RAY_TMPDIR": str(folder / "r"),  # a private Ray: never another sweep's cluster
            TRIAL_SECONDS_ENV: str(args.trial_seconds),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        (folder / "r").mkdir()
        me = [sys.executable, str(Path(__file__).resolve()), "--driver"]
        out: dict[str, Any] = {
            "trials": trials,
            "preset": args.preset,
            "trial_seconds": args.trial_seconds,
            "max_concurrent": args.max_concurrent,
            "sweep_args": args.sweep_args,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
            "load_before": os.getloadavg(),
        }
        print(f"[{trials} trials] sweep ...", flush=True)
        stats_file = folder / "driver.json"
        out["sweep_wall_s"] = _run(
            [*me, str(stats_file), "--", *sweep], folder, env, folder / "sweep.log"
        )
        stats = json.loads(stats_file.read_text())
        out["driver"] = stats
        out["load_after"] = os.getloadavg()
        from sweeps.driver.snapshot import SESSION_FILES

        experiment = storage / SWEEP_NAME
        prefixes = tuple(template.split("{}")[0] for template in SESSION_FILES)
        snapshot = [p for p in experiment.iterdir() if p.is_file() and p.name.startswith(prefixes)]
        out["snapshot_files"] = {p.name: p.stat().st_size for p in snapshot}
        out["tuner_pkl_bytes"] = _du(experiment / "tuner.pkl")
        trial_dirs = [p for p in experiment.iterdir() if p.is_dir() and p.name != "report"]
        out["trial_dirs"] = len(trial_dirs)
        out["storage_trials_bytes"] = sum(_du(p) for p in trial_dirs)
        out["storage_total_bytes"] = _du(experiment)
        out["checkpoints_kept"] = sum(
            1 for p in trial_dirs for c in p.iterdir() if c.name.startswith("checkpoint_")
        )
        out["mlartifacts_bytes"] = _du(folder / "mlartifacts")
        out["mlflow_db_bytes"] = _du(database)
        journals = list(storage.rglob("optuna.journal*"))
        out["journal_bytes"] = sum(_du(p) for p in journals)
        out["summary_bytes"] = _du(experiment / "summary.json")

        print(f"[{trials} trials] report ...", flush=True)
        out["report_s"] = _run(
            [sys.executable, "-m", "analysis.report", "--tune-dir", str(experiment),
             "--out", str(folder / "report")],
            ROOT, env, folder / "report.log",
        )  # fmt: skip
        print(f"[{trials} trials] --resume ...", flush=True)
        resume_stats = folder / "resume.json"
        out["resume_s"] = _run(
            [*me, str(resume_stats), "--", *sweep, "--resume"], folder, env, folder / "resume.log"
        )
        out["resume_driver"] = json.loads(resume_stats.read_text())
        print(f"[{trials} trials] MLflow runs table ...", flush=True)
        out.update(runs_table(folder, database, env))
        return out
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


# -- the table -------------------------------------------------------------------------------
def _mb(n: float) -> str:
    return f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def derived(r: dict[str, Any]) -> dict[str, Any]:
    """The figures of one size. Steady: from the first trial's end to the last's (the
    driver's start, Ray's and the workers' first imports left out)."""
    d = r["driver"]
    fit_s = d["fit_end"] - d["fit_start"]
    ends, cpu, snap = d["ends"], d["ends_cpu"], d["ends_snapshot_s"]
    span = max(1e-9, ends[-1] - ends[0])
    fifth = max(2, len(ends) // 5)

    def pace(points: list[float]) -> float:
        return (points[-1] - points[0]) / max(1, len(points) - 1)

    state = max(
        (v for k, v in r["snapshot_files"].items() if k.startswith("experiment_state-")),
        default=0,
    )
    return {
        "fit_s": fit_s,
        "end_s": d["wall_s"] - d["fit_end"],
        "steady": span / max(1, len(ends) - 1),
        "steady_cpu": (cpu[-1] - cpu[0]) / max(1, len(ends) - 1),
        "early": pace(ends[:fifth]),
        "late": pace(ends[-fifth:]),
        "state_bytes": state,
        "snapshot_bytes": sum(r["snapshot_files"].values()),
        "snapshot_share": (snap[-1] - snap[0]) / span,
        "snapshots": d["snapshots"],
        "snapshot_ms": 1000 * d["snapshot_s"] / max(1, d["snapshots"]),
    }


def table(results: list[dict[str, Any]]) -> str:
    base = derived(min(results, key=lambda r: r["trials"]))["steady"]
    lines = [
        "| trials | fit s (end s) | steady s/trial (ratio) | driver CPU s/trial "
        "| s/trial first → last fifth | snapshot files (state json) | writes, ms each "
        "| snapshot share | storage/trial | mlartifacts/trial | journal | mlflow.db "
        "| peak RSS | report s | --resume s | runs table s (cold) |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(results, key=lambda r: r["trials"]):
        x, n = derived(r), r["trials"]
        lines.append(
            f"| {n:,} | {x['fit_s']:.0f} ({x['end_s']:.0f}) | {x['steady']:.3f} "
            f"({x['steady'] / base:.2f}×) | {x['steady_cpu']:.3f} "
            f"| {x['early']:.3f} → {x['late']:.3f} "
            f"| {_mb(x['snapshot_bytes'])} ({_mb(x['state_bytes'])}) "
            f"| {x['snapshots']:,}, {x['snapshot_ms']:.0f} | {100 * x['snapshot_share']:.1f}% "
            f"| {_mb(r['storage_trials_bytes'] / n)} | {_mb(r['mlartifacts_bytes'] / n)} "
            f"| {_mb(r['journal_bytes'])} | {_mb(r['mlflow_db_bytes'])} "
            f"| {r['driver']['peak_rss_kb'] / 1024:,.0f} MB | {r['report_s']:.1f} "
            f"| {r['resume_s']:.1f} | {r['runs_search_s']:.3f} ({r['runs_search_cold_s']:.3f}) |"
        )
    first = results[0]
    lines.append(
        f"\n{first['cores']} cores; preset {first['preset']}, stand-in trials of "
        f"{first['trial_seconds']} s, {first['max_concurrent']} at a time: ideal "
        f"{first['trial_seconds'] / first['max_concurrent']:.3f} s/trial. Sweep wall (driver "
        "start to exit): "
        + ", ".join(f"{r['trials']:,}: {r['sweep_wall_s']:.0f} s" for r in results)
    )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--driver":
        stats, sep, *argv = sys.argv[2:]
        assert sep == "--", "usage: --driver STATS -- SWEEP ARGS"
        sys.exit(driver(Path(stats), argv))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--results", type=Path, default=Path("sweep_scale.jsonl"))
    parser.add_argument("--show", action="store_true", help="print the results file's table")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--trial-seconds", type=float, default=0.2)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--sweep-args", default="", help="more betavae-sweep flags, one string")
    parser.add_argument("--workdir", default=None, help="where the temporary folders go")
    parser.add_argument("--keep", action="store_true", help="keep each size's folder")
    args = parser.parse_args()
    if args.show:
        results = [json.loads(line) for line in args.results.read_text().splitlines() if line]
        print(table(results))
        return
    results = []
    for trials in args.trials:
        result = measure(trials, args)
        with args.results.open("a") as f:
            f.write(json.dumps(result) + "\n")
        results.append(result)
        print(table([result]), flush=True)
    print()
    print(table(results))


if __name__ == "__main__":
    main()
