"""Record the cpu preset's landscape: a grid over its search space, every model scored.

Each grid point is trained and scored exactly as a sweep trial would be (the preset's steps,
batch, learning rate, metric suite and mode; ``sweeps.trial.config.TrialConfig`` builds the
training config and ``sweeps.trial.trainable.score`` scores it), at seeds 0 and 1 (the seeds a
sweep's replicates 0 and 1 get). One JSON line per model goes to ``bench/landscape/cpu.jsonl``
as soon as it is scored, so the run can be stopped at any time and started again: recorded
models are skipped. Seed 0 of every point comes before seed 1, so a partial record covers
the whole grid once before it repeats any of it.

    nice -n 19 .venv/bin/python bench/landscape.py            # the whole grid, 2 workers
    .venv/bin/python bench/landscape.py --list                # the grid and what is recorded

The grid (issue 16): the β family at 10 β values log-spaced over [1, 32]; the capacity family
at C_max × anneal fraction × γ = 4 × 3 × 3 over the preset's ranges; latent sizes 5 and 10
(the preset's range); 184 models. ``bench/search_efficiency.py`` replays searchers on it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sweeps.config import parse_settings  # noqa: E402

OUT = ROOT / "bench" / "landscape" / "cpu.jsonl"
SEEDS = (0, 1)
BETAS = tuple(float(f"{b:.4g}") for b in np.geomspace(1.0, 32.0, 10))


def grid(settings: Any) -> list[dict[str, Any]]:
    """The grid points (no seed), β family first; values rounded to 4 significant digits."""
    c_lo, c_hi = settings.capacity_max_range
    a_lo, a_hi = settings.anneal_fraction_range
    g_lo, g_hi = settings.gamma_range
    capacities = [float(f"{c:.4g}") for c in np.linspace(c_lo, c_hi, 4)]
    fractions = [float(f"{a:.4g}") for a in np.linspace(a_lo, a_hi, 3)]
    gammas = [float(f"{g:.4g}") for g in np.geomspace(g_lo, g_hi, 3)]
    latents = sorted(set(settings.latent_dim_range))
    points: list[dict[str, Any]] = []
    for z in latents:
        points += [{"objective": "beta", "beta": b, "latent_dim": z} for b in BETAS]
    for z in latents:
        for c in capacities:
            for a in fractions:
                for g in gammas:
                    points.append(
                        {
                            "objective": "capacity",
                            "capacity_max": c,
                            "anneal_fraction": a,
                            "gamma": g,
                            "latent_dim": z,
                        }
                    )
    return points


def key(point: dict[str, Any]) -> str:
    """One model's identity in the record: the point's values and the seed."""
    names = ("objective", "beta", "capacity_max", "anneal_fraction", "gamma", "latent_dim", "seed")
    return "|".join(f"{n}={point.get(n)}" for n in names)


def jobs(settings: Any, seeds: tuple[int, ...]) -> Iterator[dict[str, Any]]:
    for seed in seeds:  # seed-major: the whole grid once, then again
        for point in grid(settings):
            yield {**point, "seed": seed}


def recorded(path: Path) -> set[str]:
    if not path.exists():
        return set()
    done = set()
    for line in path.read_text().splitlines():
        try:
            done.add(key(json.loads(line)))
        except json.JSONDecodeError:
            continue  # a torn last line from a killed run: that model is trained again
    return done


def train_and_score(job: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """One model, in a worker process: train as a sweep trial would, then score it."""
    import torch

    from betavae.data import load_dataset
    from betavae.training import Trainer
    from sweeps.trial.config import TrialConfig
    from sweeps.trial.trainable import curve_row, score

    point, constants = job
    torch.set_num_threads(1)
    trial = TrialConfig.from_tune({**point, "replicate": point["seed"], **constants})
    config = trial.train_config()
    trainer = Trainer(config, load_dataset(config.dataset))
    curve = []
    start = time.perf_counter()
    while trainer.step < config.steps:
        until = min(config.steps, (trainer.step // trial.report_every + 1) * trial.report_every)
        try:
            metrics = trainer.fit(until, log_every=trial.report_every)
        except FloatingPointError as err:
            return {**point, "error": f"diverged: {err}"}
        row = curve_row(metrics, config.objective)
        curve.append({k.removeprefix("train/"): v for k, v in row.items()})
    train_seconds = time.perf_counter() - start
    result, elbo, evaluation = score(trainer, trial)
    return {
        **point,
        **{k: v for k, v in result.items() if k != "step"},
        "kl_per_dim": elbo["kl_per_dim"],
        "train_seconds": round(train_seconds, 1),
        "metric_seconds": evaluation.seconds,
        "curve": curve,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--list", action="store_true", help="print the grid and what is done")
    args = parser.parse_args(argv)

    from sweeps.driver.tuner import trial_constants

    settings = parse_settings(["--preset", "cpu"])
    constants = trial_constants(settings)
    todo = list(jobs(settings, tuple(args.seeds)))
    done = recorded(args.out)
    pending = [p for p in todo if key(p) not in done]
    print(f"landscape: {len(todo)} models, {len(todo) - len(pending)} recorded, "
          f"{len(pending)} to train -> {args.out}", flush=True)  # fmt: skip
    if args.list or not pending:
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    context = multiprocessing.get_context("spawn")
    with context.Pool(args.workers) as pool, args.out.open("a") as out:
        work = [(p, constants) for p in pending]
        for n, row in enumerate(pool.imap_unordered(train_and_score, work), 1):
            out.write(json.dumps(row) + "\n")
            out.flush()
            os.fsync(out.fileno())
            left = (time.time() - start) / n * (len(pending) - n) / 60
            recon, mig = row.get("recon_nll", float("nan")), row.get("metric.mig", float("nan"))
            print(f"[{n}/{len(pending)}] {key(row)} recon {recon:.1f} mig {mig:.3f} "
                  f"~{left:.0f} min left", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
