"""What the MLflow database's backup uploads over a 1,000-trial sweep, against the old way.

    .venv/bin/python bench/mlflow_backup.py                        # 1,000 trials
    .venv/bin/python bench/mlflow_backup.py --trials 200 --chunk-kib 64 256 1024

A real MLflow sqlite store (MlflowClient, MLflow's own schema) grows trial by trial as the
sweep's writer fills it (``sweeps.tracking.writer``): per trial a child run with its tags
(parent, trial id, role, setting, Optuna number, node), its params, ``--steps`` curve points of
``--keys`` ``train/…`` metrics, the final scores, ``feasible`` and the run's end; one
``log_batch`` per 1,000 values, so the store is built in minutes. After each trial's end every
strategy backs the store up, as the writer does, into a local folder whose filesystem is
wrapped to count what a bucket would get (a write is one PUT, a read one GET, a file's info one
HEAD, a listing one LIST, a deletion one DELETE):

- ``whole`` (the baseline, the code before this change): a sqlite snapshot of the whole
  database written as one object after every trial end;
- ``chunked-NK`` (``sweeps.tracking.backup.DatabaseBackup`` with no interval): the snapshot
  in N KiB chunks named by their hash, only the chunks the stored manifest lacks uploaded;
- ``throttled`` (the shipped ``DatabaseBackup``: ``CHUNK_SIZE`` chunks, at most one copy
  every ``INTERVAL_S`` seconds), on a simulated clock where a trial ends every
  ``--trial-gap`` seconds (the clock is the only thing simulated).

Each ``DatabaseBackup`` strategy ends with the sweep's final copy (``final=True``) and a restore
into a fresh file, checked byte for byte against a snapshot. Printed: objects written, bytes
uploaded and their ratio to the baseline's, requests, seconds spent backing up (the driver's
writer thread waits for them) and the restore; then bytes uploaded at every ``--every`` trials.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "bench-sweep"


class Counted:
    """A pyarrow filesystem's calls counted as the requests a bucket would get."""

    def __init__(self, fs) -> None:
        self.fs = fs
        self.requests: Counter = Counter()
        self.bytes = 0

    def open_output_stream(self, path, *args, **kwargs):
        self.requests["PUT"] += 1
        outer, inner = self, self.fs.open_output_stream(path, *args, **kwargs)

        class Stream:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                inner.close()

            def write(self, data):
                outer.bytes += len(data)
                return inner.write(data)

        return Stream()

    def open_input_stream(self, path):
        self.requests["GET"] += 1
        return self.fs.open_input_stream(path)

    def get_file_info(self, what):
        self.requests["LIST" if not isinstance(what, str) else "HEAD"] += 1
        return self.fs.get_file_info(what)

    def delete_file(self, path):
        self.requests["DELETE"] += 1
        return self.fs.delete_file(path)

    def create_dir(self, path, recursive=True):
        return self.fs.create_dir(path, recursive=recursive)

    def move(self, src, dest):  # the local manifest's rename: one PUT already counted
        return self.fs.move(src, dest)


class Whole:
    """The old backup: a snapshot of the whole database, one object, after every trial end."""

    def __init__(self, database: Path, folder: Path) -> None:
        import pyarrow.fs

        self.database, self.path = database, str(folder / "_mlflow" / "mlflow.db")
        self.fs = Counted(pyarrow.fs.LocalFileSystem())
        (folder / "_mlflow").mkdir(parents=True)

    def copy(self, final: bool = False) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            snapshot = Path(tmp) / "mlflow.db"
            source = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
            target = sqlite3.connect(snapshot)
            source.backup(target)
            target.close()
            source.close()
            with self.fs.open_output_stream(self.path) as out, snapshot.open("rb") as f:
                while piece := f.read(1 << 22):
                    out.write(piece)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def grow(client, experiment: str, parent: str, n: int, rng: random.Random, args) -> None:
    """One trial's run, as the sweep's writer logs it (see the module doc)."""
    from mlflow.entities import Metric, Param, RunTag

    tags = {
        "betavae.parent_run_id": parent,
        "mlflow.parentRunId": parent,
        "betavae.trial_id": f"{rng.getrandbits(32):08x}_{n:05d}",
        "betavae.role": "trial",
        "betavae.setting": f"{rng.getrandbits(40):010x}",
        "betavae.optuna_trial": str(n),
        "mlflow.source.git.commit": "0" * 40,
    }
    run = client.create_run(experiment, run_name=f"C{n}-g100-z10-s0", tags=tags)
    run_id = run.info.run_id
    params = {f"p{i:02d}": str(rng.random()) for i in range(args.params)}
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
    t0 = int(time.time() * 1000)
    keys = ["train/loss", "train/recon_nll", "train/kl", "train/images_per_s", "train/capacity"]
    keys += [f"train/kl_per_dim/{i:02d}" for i in range(max(0, args.keys - len(keys)))]
    metrics = [
        Metric(k, rng.random(), t0 - 10 * (args.steps - s) - 1, s * 1000)
        for s in range(1, args.steps + 1)
        for k in keys[: args.keys]
    ]
    metrics += [Metric(f"metric.score{i}", rng.random(), t0, 0) for i in range(10)]
    for start in range(0, len(metrics), 1000):
        client.log_batch(
            run_id,
            metrics=metrics[start : start + 1000],
            tags=[RunTag("betavae.node", f"{rng.getrandbits(64):016x}")] if start == 0 else [],
        )
    client.set_tag(run_id, "feasible", "true")
    client.set_terminated(run_id, status="FINISHED")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=50, help="curve points per trial")
    parser.add_argument("--keys", type=int, default=15, help="train/ metrics per curve point")
    parser.add_argument("--params", type=int, default=18)
    parser.add_argument(
        "--chunk-kib", type=int, nargs="*", default=None,
        help="chunked strategies to run (default: the shipped CHUNK_SIZE)",
    )  # fmt: skip
    parser.add_argument(
        "--trial-gap", type=float, default=60.0,
        help="simulated seconds between trial ends, for the throttled copy",
    )  # fmt: skip
    parser.add_argument("--every", type=int, default=200, help="trials between curve rows")
    args = parser.parse_args()

    import logging

    import mlflow
    import pyarrow.fs
    from mlflow.tracking import MlflowClient

    from sweeps.tracking.backup import CHUNK_SIZE, INTERVAL_S, DatabaseBackup, restore

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    sizes = args.chunk_kib if args.chunk_kib is not None else [CHUNK_SIZE // 1024]
    with tempfile.TemporaryDirectory(prefix="mlflow-backup-") as tmp:
        tmp = Path(tmp)
        database = tmp / "head" / "mlflow.db"
        database.parent.mkdir()
        client = MlflowClient(f"sqlite:///{database}")
        experiment = client.create_experiment(NAME)
        parent = client.create_run(experiment, run_name=NAME).info.run_id

        strategies: dict[str, object] = {"whole": Whole(database, tmp / "whole" / NAME)}
        clock = Clock()
        for kib in sizes:
            strategies[f"chunked-{kib}K"] = DatabaseBackup(
                database, str(tmp / f"chunked-{kib}K"), NAME, interval_s=0, chunk_size=kib * 1024
            )
        strategies["throttled"] = DatabaseBackup(
            database, str(tmp / "throttled"), NAME, clock=clock
        )
        counted = {}
        for name, strategy in strategies.items():
            if isinstance(strategy, DatabaseBackup):
                fs, path = strategy._filesystem()
                strategy._fs = (Counted(fs), path)
            counted[name] = strategy.fs if isinstance(strategy, Whole) else strategy._fs[0]
        seconds = Counter()
        curve = []
        rng = random.Random(0)
        start = time.perf_counter()
        for n in range(1, args.trials + 1):
            grow(client, experiment, parent, n, rng, args)
            clock.now += args.trial_gap
            for name, strategy in strategies.items():
                t = time.perf_counter()
                strategy.copy()
                seconds[name] += time.perf_counter() - t
            if n % args.every == 0 or n == args.trials:
                size = database.stat().st_size
                curve.append(
                    (n, size, {k: (c.bytes, c.requests["PUT"]) for k, c in counted.items()})
                )
                print(
                    f"{n} trials, {size / 1e6:.1f} MB, {time.perf_counter() - start:.0f} s",
                    flush=True,
                )
        client.set_terminated(parent, status="FINISHED")  # the sweep's end, then its final copy
        restored = {}
        for name, strategy in strategies.items():
            t = time.perf_counter()
            strategy.copy(final=True)
            seconds[name] += time.perf_counter() - t
            if isinstance(strategy, DatabaseBackup):
                target = tmp / "restored" / name / "mlflow.db"
                t = time.perf_counter()
                done, _ = restore(str(tmp / name), NAME, target)
                restored[name] = time.perf_counter() - t
                assert done
        snapshot = tmp / "final.db"
        src, dst = sqlite3.connect(database), sqlite3.connect(snapshot)
        src.backup(dst)
        dst.close()
        src.close()
        for name in restored:
            assert (tmp / "restored" / name / "mlflow.db").read_bytes() == snapshot.read_bytes(), (
                name
            )
        size = database.stat().st_size
        objects = {
            name: sum(1 for _ in (Path(s.target) / "chunks").iterdir())
            for name, s in strategies.items()
            if isinstance(s, DatabaseBackup)
        }
        shutil.rmtree(tmp / "whole")

    base = counted["whole"].bytes
    print(
        f"\n{os.cpu_count()} cores; MLflow {mlflow.__version__}, pyarrow {pyarrow.__version__}; "
        f"{args.trials} trials × ({args.steps} steps × {args.keys} curve metrics + 10 scores, "
        f"{args.params} params); the database ends at {size / 1e6:.1f} MB; throttled: a trial "
        f"ends every {args.trial_gap:.0f} s (simulated), at most one copy per {INTERVAL_S:.0f} s\n"
    )
    print(
        "| strategy | objects written | uploaded | ratio | requests | backup s | restore s "
        "| chunks kept |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|")
    for name, c in counted.items():
        requests = " ".join(f"{k} {v:,}" for k, v in sorted(c.requests.items()))
        print(
            f"| {name} | {c.requests['PUT']:,} | {c.bytes / 1e6:,.1f} MB | {c.bytes / base:.3f} "
            f"| {requests} | {seconds[name]:.1f} | "
            f"{restored[name]:.2f} | {objects[name]:,} |"
            if name in restored
            else f"| {name} | {c.requests['PUT']:,} | {c.bytes / 1e6:,.1f} MB | 1.000 | {requests} "
            f"| {seconds[name]:.1f} | – | 1 |"
        )
    print("\nbytes uploaded by trials (objects written)")
    print("| trials | database | " + " | ".join(counted) + " |")
    print("|---:|---:|" + "---:|" * len(counted))
    for n, db_size, sent in curve:
        cells = " | ".join(f"{b / 1e6:,.1f} MB ({p:,})" for b, p in sent.values())
        print(f"| {n} | {db_size / 1e6:.1f} MB | {cells} |")


if __name__ == "__main__":
    main()
