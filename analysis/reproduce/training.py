"""One reproduction run in a worker process: train, probe the latents as training goes,
evaluate, keep everything on disk (``OUT/runs/NAME/``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

#: Held-out images that probe which factor each latent carries.
PROBE_IMAGES = 10_000
PROBE_SEED = 12_345
FINAL = "final.json"
HISTORY = "history.jsonl"


def done(folder: Path) -> dict[str, Any] | None:
    """A finished run's final record, or None."""
    path = folder / FINAL
    return json.loads(path.read_text()) if path.is_file() else None


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

    Every ``log_every`` steps a history line (loss terms, per-latent KL, C); every
    ``probe_every`` steps the latents' information about each factor, read through the
    posterior noise (``betavae.metrics.latents``). At the end: the ELBO terms on 10,000
    images, the final information matrix, ``metrics`` scored in ``metric_mode``, and the
    checkpoint. A finished run is not trained again.
    """
    import numpy as np
    import torch

    from betavae.checkpoint import save_checkpoint
    from betavae.config import TrainConfig
    from betavae.data import load_dataset
    from betavae.metrics import evaluate
    from betavae.metrics.latents import factor_information, sampled_codes
    from betavae.training import Trainer

    out = Path(folder)
    if (previous := done(out)) is not None:
        return previous
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    train_config = TrainConfig.from_dict(config)
    dataset = load_dataset(train_config.dataset)
    trainer = Trainer(train_config, dataset)
    probe_rng = np.random.default_rng(PROBE_SEED)
    probe_factors = dataset.sample_factors(PROBE_IMAGES, probe_rng)
    probe_images = dataset.images(probe_factors)
    varying = list(dataset.varying_factors)

    def information() -> list[list[float]]:
        mu, logvar = trainer.posterior(probe_images)
        codes = sampled_codes(mu, logvar, np.random.default_rng(PROBE_SEED))
        return factor_information(codes, probe_factors[:, varying]).tolist()

    start = time.perf_counter()
    with (out / HISTORY).open("w") as history:
        while trainer.step < train_config.steps:
            until = min(train_config.steps, (trainer.step // probe_every + 1) * probe_every)
            rows: list[dict[str, Any]] = []
            trainer.fit(until, log_every=log_every, callback=rows.append)
            rows[-1]["information"] = information()
            for row in rows:
                history.write(json.dumps(row) + "\n")
            history.flush()
    train_seconds = time.perf_counter() - start
    final = trainer.evaluate(num_images=10_000, seed=0)
    record: dict[str, Any] = {
        "config": train_config.to_dict(),
        "recon_nll": final["recon_nll"],
        "kl": final["kl"],
        "kl_per_dim": final["kl_per_dim"],
        "information": information(),
        "factor_names": [dataset.factor_names[j] for j in varying],
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


def run_all(
    jobs: list[tuple[str, dict[str, Any]]],
    runs: Path,
    *,
    workers: int,
    cores: int,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """Train every ``(name, config)`` job under ``runs/NAME`` on ``workers`` processes that
    share ``cores`` CPU threads; finished runs are read back, not retrained."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, cores // max(1, workers))
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for name, config in jobs:
        if (record := done(runs / name)) is not None:
            results[name] = record
        else:
            todo.append((name, config))
    if todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            futures = {
                name: pool.submit(train_run, config, str(runs / name), threads=threads, **options)
                for name, config in todo
            }
            for name, future in futures.items():
                results[name] = future.result()
                print(f"  {name}: recon_nll {results[name]['recon_nll']:.1f} nats", flush=True)
    return results
