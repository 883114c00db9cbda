"""One reproduction run in a worker process: train, probe the latents as training goes,
evaluate, keep everything on disk (``OUT/runs/NAME/``).

A run checkpoints at every probe (``resume/step_NNNNNN``: weights, optimiser, RNGs, written whole
then renamed into place) after its history lines up to that step are on disk; run again, it
continues from the newest checkpoint exactly as if never stopped (on the same kind of CPU), history
lines past that step dropped. A long run (the papers' 120k steps: hours on a CPU) survives a kill.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from analysis.reproduce.probes import ProbeSet

FINAL = "final.json"
LOCK = ".lock"
HISTORY = "history.jsonl"
RESUME = "resume"


def latest_checkpoint(folder: Path) -> tuple[int, Path] | None:
    """``(step, folder)`` of a run's newest resume checkpoint, or None."""
    found = [
        (int(p.name.removeprefix("step_")), p)
        for p in (folder / RESUME).glob("step_*")
        if p.name.removeprefix("step_").isdigit()
    ]
    return max(found) if found else None


def _checkpoint(trainer: Any, folder: Path) -> None:
    """The trainer's state as ``resume/step_N``, complete or absent; older ones removed."""
    from betavae.checkpoint import save_checkpoint

    resume = folder / RESUME
    final = resume / f"step_{trainer.step:06d}"
    partial = resume / f".partial_{trainer.step:06d}"
    shutil.rmtree(partial, ignore_errors=True)  # torn by a kill while it was written
    save_checkpoint(trainer, partial)
    os.replace(partial, final)  # a resumed run never saves its resume step again
    for old in resume.iterdir():
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _history_until(folder: Path, step: int) -> list[str]:
    """The history lines of steps ≤ ``step`` (a resumed run's; later ones are retrained)."""
    path = folder / HISTORY
    if not path.is_file():
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return kept


def done(folder: Path) -> dict[str, Any] | None:
    """A finished run's final record, or None."""
    path = folder / FINAL
    return json.loads(path.read_text()) if path.is_file() else None


class RunMismatch(ValueError):
    """A run's folder holds a run of another configuration than the one asked for."""


def check_same_run(folder: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """Raise :class:`RunMismatch` if ``folder`` holds a run, finished or resumable, trained with
    another configuration than ``config``: reused, it would be reported under a protocol it
    never had (a 20,000-step run as a 5,000-step one), and resumed, it would go on under another
    one mid-run. The message names each field that differs and both values. Returns the
    finished run's record (``done``), read once for the check and the reuse; None if unfinished."""
    from betavae.checkpoint import read_config
    from betavae.config import ConfigError, TrainConfig

    if (record := done(folder)) is not None:
        found, where = record["config"], folder / FINAL
    elif (resume := latest_checkpoint(folder)) is not None:
        found, where = read_config(resume[1]).to_dict(), resume[1]
    else:
        return None
    # A run from before a field was added reads with the field's default; one holding a field
    # since removed is compared as it is, and the field named below.
    with contextlib.suppress(ConfigError):
        found = TrainConfig.from_dict(found).to_dict()
    # Both through JSON, as final.json and the checkpoint's config.json hold them.
    found = json.loads(json.dumps(found))
    asked = json.loads(json.dumps(TrainConfig.from_dict(config).to_dict()))
    differ = [k for k in sorted(set(found) | set(asked)) if found.get(k) != asked.get(k)]
    if differ:
        fields = "; ".join(f"{k} {found.get(k)!r} there, {asked.get(k)!r} asked" for k in differ)
        raise RunMismatch(
            f"{folder} holds a run trained with another configuration ({where}): {fields}. "
            f"Give another --out, or delete {folder} to train it afresh"
        )
    return record


def train_run(
    config: dict[str, Any],
    folder: str,
    *,
    threads: int,
    log_every: int,
    probe_every: int,
    metrics: tuple[str, ...] = (),
    metric_mode: str = "fast",
) -> dict[str, Any]:
    """Train ``config`` (a ``TrainConfig`` dict) into ``folder``; return the final record.

    Every ``log_every`` steps a history line (loss terms, per-latent KL, C if capacity); every
    ``probe_every`` steps the latents' information about each factor, read through the
    posterior noise (``betavae.metrics.latents``). At the end: the ELBO terms on 10,000
    images, the final information matrix, ``metrics`` scored in ``metric_mode``, and the
    checkpoint. A finished run is not trained again.
    """
    out = Path(folder)
    if (previous := done(out)) is not None:
        return previous
    out.mkdir(parents=True, exist_ok=True)
    with _sole_writer(out):
        return _train(config, out, threads, log_every, probe_every, metrics, metric_mode)


@contextlib.contextmanager
def _sole_writer(out: Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` while training: a second process on the same run (a second command,
    or a worker left training after its parent was killed) would write the same history and
    checkpoints and tear them. Released by the kernel when the holder dies."""
    import fcntl

    with (out / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"{out}: another process is training this run (it holds {out / LOCK}); stop "
                "it first or give another --out"
            ) from None
        yield


def _train(
    config: dict[str, Any],
    out: Path,
    threads: int,
    log_every: int,
    probe_every: int,
    metrics: tuple[str, ...],
    metric_mode: str,
) -> dict[str, Any]:
    import torch

    from betavae.checkpoint import load_checkpoint, save_checkpoint
    from betavae.config import TrainConfig
    from betavae.data import load_dataset
    from betavae.metrics import evaluate
    from betavae.training import Trainer

    if (previous := done(out)) is not None:  # finished by a process that held the lock
        return previous
    torch.set_num_threads(threads)
    # Over a long CPU run weights and Adam's moments drift into fp32's subnormal range, where
    # arithmetic is several times slower: at step 31,000 of the papers' capacity schedule a
    # step took 1.77x longer than with subnormals flushed to zero (bench/subnormal.py).
    torch.set_flush_denormal(True)
    train_config = TrainConfig.from_dict(config)
    dataset = load_dataset(train_config.dataset)
    resumed = latest_checkpoint(out)
    if resumed is None:
        trainer, kept = Trainer(train_config, dataset), []
    else:
        trainer = load_checkpoint(resumed[1], dataset, config=train_config)
        kept = _history_until(out, trainer.step)
        print(f"  {out.name}: resumed at step {trainer.step:,} of {train_config.steps:,}",
              flush=True)  # fmt: skip
    probes = ProbeSet(dataset)
    factor_names = probes.factor_names

    start, first_step = time.perf_counter(), trainer.step
    before = float(json.loads(kept[-1]).get("train_seconds", 0.0)) if kept else 0.0
    with (out / HISTORY).open("w") as history:
        history.writelines(kept)
        history.flush()
        while trainer.step < train_config.steps:
            until = min(train_config.steps, (trainer.step // probe_every + 1) * probe_every)
            rows: list[dict[str, Any]] = []
            trainer.fit(until, log_every=log_every, callback=rows.append)
            rows[-1].update(probes.probe(trainer.posterior))
            rows[-1]["factor_names"] = factor_names
            rows[-1]["train_seconds"] = before + time.perf_counter() - start
            for row in rows:
                history.write(json.dumps(row) + "\n")
            history.flush()
            os.fsync(history.fileno())
            _checkpoint(trainer, out)
            if until < train_config.steps:
                # At this sitting's pace, probes and checkpoints included: the machine's load
                # now, not the average over sittings, and not the training time alone.
                pace = (time.perf_counter() - start) / (trainer.step - first_step)
                left = pace * (train_config.steps - trainer.step)
                print(f"  {out.name}: step {trainer.step:,} of {train_config.steps:,}, "
                      f"~{left / 60:.0f} min left", flush=True)  # fmt: skip
    train_seconds = before + time.perf_counter() - start
    final = trainer.evaluate(num_images=10_000, seed=0)
    record: dict[str, Any] = {
        "config": train_config.to_dict(),
        "recon_nll": final["recon_nll"],
        "kl": final["kl"],
        "kl_per_dim": final["kl_per_dim"],
        **probes.probe(trainer.posterior),
        "factor_names": factor_names,
        "train_seconds": train_seconds,
        "threads": threads,
    }
    if metrics:
        scored = evaluate(
            dataset,
            trainer.encode,
            metrics=list(metrics),
            mode=metric_mode,
            seed=0,
            kl_per_dim=final["kl_per_dim"],
        )
        record["scores"] = scored.scores
        record["scoring"] = scored.settings
    save_checkpoint(trainer, out / "checkpoint")
    (out / FINAL).write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(out / RESUME, ignore_errors=True)  # the final checkpoint supersedes it
    return record


def history(folder: Path) -> list[dict[str, Any]]:
    """A run's history lines (a line cut short by a crash is skipped)."""
    rows = []
    for line in (folder / HISTORY).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def partial_record(folder: Path) -> dict[str, Any] | None:
    """An unfinished run as its last probe saw it, in a final record's shape (its ELBO terms
    are that step's training batch's, not 10,000 held-out images'); None before a probe."""
    probes = (
        [r for r in history(folder) if "information" in r] if (folder / HISTORY).is_file() else []
    )
    if not probes or "factor_names" not in probes[-1]:
        return None
    last = probes[-1]
    keys = ("recon_nll", "kl", "kl_per_dim", "information", "factor_names")
    return {**{k: last[k] for k in keys}, "partial_step": last["step"]}


def run_all(
    jobs: list[tuple[str, dict[str, Any]]],
    runs: Path,
    *,
    workers: int,
    cores: int,
    partial: bool = False,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """Train every ``(name, config)`` job under ``runs/NAME`` on ``workers`` processes that
    share ``cores`` CPU threads; finished runs are read back, not retrained, and a run of
    another configuration under a job's name stops everything first (:class:`RunMismatch`).
    ``partial``:
    train nothing; unfinished runs are read as their last probe saw them (``partial_record``),
    runs without a probe left out."""
    threads = max(1, cores // max(1, workers))
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for name, config in jobs:  # every run checked before any trains
        if (record := check_same_run(runs / name, config)) is not None:
            results[name] = record
        elif partial:
            if (record := partial_record(runs / name)) is not None:
                results[name] = record
                print(f"  {name}: unfinished, read at step {record['partial_step']:,} of "
                      f"{config['steps']:,}", flush=True)  # fmt: skip
        else:
            todo.append((name, config))
    if todo:
        with worker_pool(min(workers, len(todo))) as pool:
            futures = {
                name: pool.submit(train_run, config, str(runs / name), threads=threads, **options)
                for name, config in todo
            }
            for name, future in futures.items():
                results[name] = future.result()
                print(f"  {name}: recon_nll {results[name]['recon_nll']:.1f} nats", flush=True)
    return results


def worker_pool(workers: int) -> Any:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes that stop when the process
    that made it dies: ``kill PARENT`` (unlike ^C) reaches only the parent, and a worker left
    training would go on for hours, holding its run's lock."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_stop_with_parent,
        initargs=(os.getpid(),),
    )


def _stop_with_parent(parent: int, every_s: float = 1.0) -> None:
    """In a worker: a daemon thread that ends this process (SIGTERM) once ``parent`` is no
    longer its parent (it died, and the worker was handed to init)."""
    import signal
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()
