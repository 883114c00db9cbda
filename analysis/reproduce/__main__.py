"""``python -m analysis.reproduce {capacity-order,beta-ladder} --out DIR [--scale S]``.

Trains the runs an effect needs (in parallel worker processes), measures them and writes
``DIR/report.md``, ``DIR/result.json`` and the figures; ``DIR/runs/`` keeps every run, and
running the same command again reuses the finished ones. ``--scale``:

- ``cpu`` (default): the largest that fits a few hours of a 2-core CPU;
- ``gpu``: the scale of ``bench/reproduce_gpu.sh`` (minutes on one H100-class card);
- ``smoke``: seconds; checks the command, not the science.

A run killed part-way continues from its last probe when the command is run again (see
``analysis.reproduce.training``). ``--partial`` trains nothing and writes the report of the
runs as they stand (capacity-order: an unfinished run read at its last probe, and said so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

PROG = "python -m analysis.reproduce"


@dataclass(frozen=True)
class CapacityProtocol:
    steps: int
    anneal_steps: int
    capacity_max: float = 25.0
    gamma: float = 100.0
    seeds: tuple[int, ...] = (0, 1)
    latent_dim: int = 10
    lr: float = 5e-4
    log_every: int = 250
    probe_every: int = 1000

    def summary(self) -> str:
        return (
            f"capacity objective, γ = {self.gamma:g}, C 0 → {self.capacity_max:g} nats over "
            f"{self.anneal_steps:,} steps, {self.steps:,} steps at batch 64, Adam lr "
            f"{self.lr:g}, {self.latent_dim} latents, Burgess conv net, seeds "
            f"{', '.join(map(str, self.seeds))}, procedural dSprites"
        )


@dataclass(frozen=True)
class LadderProtocol:
    steps: int
    betas: tuple[float, ...] = (1.0, 4.0, 16.0)
    seeds: tuple[int, ...] = (0, 1, 2)
    latent_dim: int = 10
    lr: float = 5e-4
    metric: str = "metric.mig"
    metrics: tuple[str, ...] = ("mig", "dci", "beta_vae", "factor_vae")
    metric_mode: str = "fast"
    log_every: int = 250
    probe_every: int = 1000

    def summary(self) -> str:
        return (
            f"β objective, β ∈ {{{', '.join(f'{b:g}' for b in self.betas)}}} × seeds "
            f"{', '.join(map(str, self.seeds))}, {self.steps:,} steps at batch 64, Adam lr "
            f"{self.lr:g}, {self.latent_dim} latents, Burgess conv net, procedural dSprites; "
            f"scores in {self.metric_mode} mode"
        )


SCALES: dict[str, dict[str, Any]] = {
    "capacity-order": {
        "cpu": CapacityProtocol(steps=20_000, anneal_steps=20_000),
        "gpu": CapacityProtocol(steps=40_000, anneal_steps=40_000, seeds=(0, 1, 2)),
        "smoke": CapacityProtocol(
            steps=60, anneal_steps=60, capacity_max=5.0, seeds=(0,), log_every=10, probe_every=30
        ),
    },
    "beta-ladder": {
        "cpu": LadderProtocol(steps=5_000),
        "gpu": LadderProtocol(steps=10_000, metric_mode="reference"),
        "smoke": LadderProtocol(
            steps=30,
            betas=(1.0, 4.0),
            seeds=(0, 1),
            metrics=("mig",),
            log_every=10,
            probe_every=30,
        ),
    },
}


def _train_config(protocol: Any, **values: Any) -> dict[str, Any]:
    from betavae.config import TrainConfig

    return TrainConfig(
        steps=protocol.steps, latent_dim=protocol.latent_dim, lr=protocol.lr, **values
    ).to_dict()


def capacity_order(
    protocol: CapacityProtocol, out: Path, workers: int, cores: int, partial: bool = False
) -> dict:
    from analysis.reproduce import capacity_order as effect
    from analysis.reproduce.training import run_all
    from betavae.data import load_dataset
    from betavae.data.stats import ignore_input_nll

    jobs = [
        (
            f"seed{seed}",
            _train_config(
                protocol,
                objective="capacity",
                gamma=protocol.gamma,
                capacity_max=protocol.capacity_max,
                capacity_anneal_steps=protocol.anneal_steps,
                seed=seed,
            ),
        )
        for seed in protocol.seeds
    ]
    runs = run_all(
        jobs,
        out / "runs",
        workers=workers,
        cores=cores,
        log_every=protocol.log_every,
        probe_every=protocol.probe_every,
        partial=partial,
    )
    if not runs:
        raise SystemExit(f"{PROG}: error: --partial: no run under {out / 'runs'} has a probe yet")
    ignore_input = ignore_input_nll(load_dataset("dsprites"))
    result = effect.analyse(runs, out, ignore_input)
    result["ignore_input_nll"] = ignore_input
    return result, effect.markdown(result, {"summary": protocol.summary()})


def beta_ladder(
    protocol: LadderProtocol, out: Path, workers: int, cores: int, partial: bool = False
) -> dict:
    from analysis.reproduce import beta_ladder as effect
    from analysis.reproduce.training import run_all

    if partial:
        raise SystemExit(f"{PROG}: error: --partial is for capacity-order (the ladder's scores "
                         "are measured at a run's end)")  # fmt: skip
    jobs = [
        (f"beta{beta:g}-seed{seed}", _train_config(protocol, beta=beta, seed=seed))
        for beta in protocol.betas
        for seed in protocol.seeds
    ]
    runs = run_all(
        jobs,
        out / "runs",
        workers=workers,
        cores=cores,
        log_every=protocol.log_every,
        probe_every=protocol.probe_every,
        metrics=protocol.metrics,
        metric_mode=protocol.metric_mode,
    )
    result = effect.analyse(runs, out, protocol.metric)
    return result, effect.markdown(result, {"summary": protocol.summary()})


EFFECTS = {"capacity-order": capacity_order, "beta-ladder": beta_ladder}


def _numbers(kind: type):
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}") from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0].strip("`"))
    p.add_argument("effect", choices=sorted(EFFECTS))
    p.add_argument("--out", type=Path, required=True, help="output folder (reused runs live here)")
    p.add_argument("--scale", choices=["cpu", "gpu", "smoke"], default="cpu")
    p.add_argument("--steps", type=int, help="training steps per run (the scale's by default)")
    p.add_argument("--seeds", type=_numbers(int), help="seeds, e.g. 0,1,2")
    p.add_argument("--gamma", type=float, help="capacity-order: γ")
    p.add_argument("--capacity-max", type=float, help="capacity-order: C_max, nats")
    p.add_argument("--anneal-steps", type=int, help="capacity-order: steps to reach C_max")
    p.add_argument("--betas", type=_numbers(float), help="beta-ladder: β values, e.g. 1,4,16")
    p.add_argument("--metric-mode", choices=["fast", "reference"], help="beta-ladder: scoring")
    p.add_argument(
        "--partial",
        action="store_true",
        help="train nothing: report the runs as they stand (unfinished ones at their last probe)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="runs trained at once (default: 2, one per core)"
    )
    return p


def protocol_from(args: argparse.Namespace) -> Any:
    protocol = SCALES[args.effect][args.scale]
    given = {
        "steps": args.steps,
        "seeds": args.seeds,
        "gamma": args.gamma,
        "capacity_max": args.capacity_max,
        "anneal_steps": args.anneal_steps,
        "betas": args.betas,
        "metric_mode": args.metric_mode,
    }
    fields = asdict(protocol)
    unknown = [k for k, v in given.items() if v is not None and k not in fields]
    if unknown:
        raise SystemExit(
            f"{PROG}: error: --{unknown[0].replace('_', '-')} is not for {args.effect}"
        )
    return replace(protocol, **{k: v for k, v in given.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    from analysis.reproduce.training import RunMismatch

    args = build_parser().parse_args(argv)
    protocol = protocol_from(args)
    args.out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    print(f"{args.effect}: {protocol.summary()}", flush=True)
    try:
        result, report = EFFECTS[args.effect](protocol, args.out, args.workers, cores, args.partial)
    except RunMismatch as err:
        raise SystemExit(f"{PROG}: error: {err}") from None
    result["protocol"] = {**asdict(protocol), "summary": protocol.summary()}
    result["seconds"] = time.perf_counter() - start
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "report.md").write_text(report)
    print(f"verdict: {result['verdict']}")
    print(f"report: {args.out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
