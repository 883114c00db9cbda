"""Replay searchers on the recorded landscape: how many trials each needs to find the best
setting within the reconstruction budget.

    .venv/bin/python bench/search_efficiency.py                 # 200 repetitions per searcher
    .venv/bin/python bench/search_efficiency.py --reps 20       # a quick look
    .venv/bin/python bench/search_efficiency.py --metric dci    # searching another score

The landscape (``bench/landscape/cpu.jsonl``, written by ``bench/landscape.py``) holds every
grid point of the cpu preset's space trained at seeds 0 and 1. A replay asks a searcher for a
setting, snaps it to the nearest recorded point (per family; β, γ and latent size on a log or
linear scale as the space samples them, each axis scaled to its range) and answers with one of
that point's recorded seeds, drawn at random without replacement (a point asked for more often
than it has seeds cycles through them again), so seed noise is part of the game.

A setting counts as found when the sweep's own pick (``analysis.frontier``: the setting of
highest median score among those whose every seed so far is within budget) is a target: a
point whose median over all its recorded seeds is within ``--tolerance`` (0.01) of the best
within-budget point's median. The searchers:

- ``grid``: every point in disentanglement_lib's order (family, then its values ascending),
  each point's seeds one after the other;
- ``sweep``: the sweep's own search (``sweeps.search.plan.build_searcher`` with the cpu
  preset's plan at the replay's budget: sampler, start-up trials, starting points,
  replicates, the reconstruction constraint), ``max_concurrent`` trials in flight;
- alternatives (``search_replay.searchers``): the same searcher with one choice of a base
  plan changed, random sampling (``random``: one seed per setting) or the TPE plan measured
  first; one whose plan is the sweep's own is replayed once, as ``sweep``.

It first prints how noisy the score is: over the points recorded at two seeds, the standard
deviation between a point's seeds, that between the points' true means, and the share of the
variance that is the setting's. A search can only beat the grid on a score the setting
explains. Then it prints, per searcher, the median and interquartile range of the trials
needed (a replay that never finds it counts as budget + 1 and the table says how many did
not), the ratio of the median to the grid's, and how often each finds it within the preset's
own ``num_samples`` (12): a second set of replays, each searcher built as the preset's own
sweep builds it (fewer start-up trials, no seed queued past its end). It draws the regret
curves (``--plot``) and writes every replay's outcome as JSON (``--json``), so a second
replay of the same table can be compared number for number. Replays are seeded by their
repetition index: the same command gives the same table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from search_replay.game import Pick, replay  # noqa: E402
from search_replay.searchers import grid_order, searchers  # noqa: E402
from search_replay.summary import (  # noqa: E402
    CURVE_LENGTH,
    markdown_table,
    plot,
    print_table,
    summarise,
)
from search_replay.table import Landscape, params_of, read_rows, seed_spread  # noqa: E402

from analysis.frontier import is_finite  # noqa: E402
from sweeps.config import SEARCH_METRICS, parse_settings  # noqa: E402

__all__ = [
    "Landscape", "Pick", "grid_order", "main", "markdown_table", "params_of", "run",
    "seed_spread",
]  # fmt: skip
LANDSCAPE = ROOT / "bench" / "landscape" / "cpu.jsonl"
OUT_JSON = ROOT / "bench" / "landscape" / "search_efficiency.json"
OUT_PLOT = ROOT / "bench" / "landscape" / "search_efficiency.png"


# -- the command ---------------------------------------------------------------------------------
def _replay_job(args: tuple) -> dict[str, Any]:
    return replay(*args)


def run(
    rows: Sequence[dict[str, Any]],
    *,
    reps: int,
    tolerance: float,
    workers: int,
    metric: str | None = None,
    only: Sequence[str] = (),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    chosen_metric = ["--metric", metric] if metric else []
    preset = parse_settings(["--preset", "cpu", *chosen_metric])
    horizon = len(rows)  # the grid's whole length: one row per model
    # The replayed sweep is the cpu preset given the grid's budget.
    settings = parse_settings(["--preset", "cpu", *chosen_metric, "--num-samples", str(horizon)])
    if not any(is_finite(r.get(preset.metric_key)) for r in rows):
        raise SystemExit(f"--metric: the landscape has no {preset.metric_key!r} score")
    landscape = Landscape.load(rows, settings, tolerance)
    # The grid always runs: the ratios are to it.
    every = searchers(settings)
    own = next(s.plan for s in every if s.name == "sweep")
    chosen = [
        s
        for s in every
        if (not only or s.name in (*only, "grid")) and (s.name == "sweep" or s.plan != own)
    ]
    names = [s.name for s in chosen]
    curve_length = min(horizon, CURVE_LENGTH)
    jobs = [(landscape, s, rep, horizon, curve_length) for s in chosen for rep in range(reps)]
    # The same searchers as the preset's own sweep builds them (its num_samples: fewer
    # start-up trials, no seed queued past its end), replayed over that many trials only.
    short_landscape = Landscape.load(rows, preset, tolerance)
    short = preset.num_samples
    chosen_short = [s for s in searchers(preset) if s.name in names]
    jobs += [(short_landscape, s, rep, short, short) for s in chosen_short for rep in range(reps)]
    start = time.time()
    done: list[dict[str, Any]] = []
    context = multiprocessing.get_context("fork")
    with context.Pool(workers) as pool:
        for n, outcome in enumerate(pool.imap(_replay_job, jobs, chunksize=1), 1):
            done.append(outcome)
            if n % max(1, len(jobs) // 20) == 0:
                progress(f"  {n}/{len(jobs)} replays, {time.time() - start:.0f} s")
    outcomes, short_outcomes = done[: len(names) * reps], done[len(names) * reps :]
    return {
        "landscape": {
            "points": len(landscape.seeds),
            "models": horizon,
            "seeds_per_point": sorted({len(v) for v in landscape.seeds.values()}),
            "metric": preset.metric_key,
            "recon_budget": preset.recon_budget,
            "best_median": landscape.best,
            "best_seeds": {
                repr(p): [r.get(preset.metric_key) for r in landscape.seeds[p]]
                for p in sorted(landscape.targets, key=str)
            },
            "seed_spread": seed_spread(landscape, preset.metric_key),
            "targets": [params_of(p) for p in sorted(landscape.targets, key=str)],
            "tolerance": tolerance,
        },
        "horizon": horizon,
        "preset_trials": preset.num_samples,
        "searchers": {s.name: s.description for s in chosen},
        "plans": {s.name: s.plan.to_dict() if s.plan else None for s in chosen},
        "preset_plans": {s.name: s.plan.to_dict() if s.plan else None for s in chosen_short},
        "table": summarise(outcomes, names, horizon, short_outcomes),
        "outcomes": [{k: o[k] for k in ("searcher", "rep", "found")} for o in outcomes],
        "preset_outcomes": [
            {k: o[k] for k in ("searcher", "rep", "found")} for o in short_outcomes
        ],
        "_curves": outcomes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landscape", type=Path, default=LANDSCAPE)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--metric", choices=SEARCH_METRICS, default=None,
        help="the score searched (default: the cpu preset's)",
    )  # fmt: skip
    parser.add_argument(
        "--only", nargs="*", default=[], help="replay only these searchers (and the grid)"
    )
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--json", type=Path, help=f"default: {OUT_JSON.relative_to(ROOT)}")
    parser.add_argument("--plot", type=Path, help=f"default: {OUT_PLOT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    own_metric = parse_settings(["--preset", "cpu"]).metric
    # Another score than the preset's: files of its own.
    suffix = f".{args.metric}" if args.metric not in (None, own_metric) else ""
    args.json = args.json or OUT_JSON.with_suffix(f"{suffix}.json")
    args.plot = args.plot or OUT_PLOT.with_suffix(f"{suffix}.png")

    rows = read_rows(args.landscape)
    result = run(
        rows,
        reps=args.reps,
        tolerance=args.tolerance,
        workers=args.workers,
        metric=args.metric,
        only=args.only,
    )
    land = result["landscape"]
    print(
        f"landscape {args.landscape.name}: {land['models']} models at {land['points']} points "
        f"(seeds per point: {land['seeds_per_point']}); {land['metric']} within recon_nll ≤ "
        f"{land['recon_budget']:g}: best median {land['best_median']:.3f}, "
        f"{len(land['targets'])} point(s) within {args.tolerance}"
    )
    spread = land["seed_spread"]
    for where, split in (spread or {}).items():
        if split:
            print(
                f"  seed noise ({where.replace('_', ' ')}, {split['points']} points): between "
                f"seeds sd {split['seed_sd']:.3f}, between settings sd {split['setting_sd']:.3f}"
                f"; the setting explains {split['setting_share']:.0%} of the variance"
            )
            pair = split["paired"]
            if pair:
                offsets = ", ".join(f"{v:+.3f}" for v in pair["seed_offsets"])
                print(
                    f"    at equal seeds: seed offsets {offsets} (shared by every setting); "
                    f"noise left sd {pair['residual_sd']:.3f}; the setting explains "
                    f"{pair['setting_share']:.0%}"
                )
    for name, text in result["searchers"].items():
        print(f"  {name:<19} {text}")
    print_table(result["table"], result["horizon"], result["preset_trials"])
    if args.markdown:
        print(markdown_table(result))
    curves = result.pop("_curves")
    plot(curves, list(result["searchers"]), args.plot, land["best_median"])
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"regret curves: {args.plot}; every replay: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
