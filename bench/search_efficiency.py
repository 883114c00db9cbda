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
- ``random``: the sweep's searcher with Optuna's RandomSampler, one seed per setting;
- ``sweep``: the sweep's own search (``sweeps.search_plan.build_searcher`` with the cpu
  preset's plan at the replay's budget: sampler, start-up trials, starting points,
  replicates, the reconstruction constraint), ``max_concurrent`` trials in flight;
- alternatives: the same searcher with one choice of the plan changed.

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
import math
import multiprocessing
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.frontier import group_settings, is_finite, within_budget  # noqa: E402
from sweeps.command_line import parse_settings  # noqa: E402
from sweeps.search_plan import SearchPlan, build_searcher, search_plan  # noqa: E402
from sweeps.settings import SEARCH_METRICS, SweepSettings  # noqa: E402

LANDSCAPE = ROOT / "bench" / "landscape" / "cpu.jsonl"
OUT_JSON = ROOT / "bench" / "landscape" / "search_efficiency.json"
OUT_PLOT = ROOT / "bench" / "landscape" / "search_efficiency.png"
POINT_KEYS = ("objective", "beta", "capacity_max", "anneal_fraction", "gamma", "latent_dim")
FAMILY_AXES = {
    "beta": ("beta", "latent_dim"),
    "capacity": ("capacity_max", "anneal_fraction", "gamma", "latent_dim"),
}
LOG_AXES = ("beta", "gamma")  # sampled log-uniform by sweeps.space
CURVE_LENGTH = 64  # trials drawn in the regret plot (the paper preset's num_samples)


def point_of(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) for k in POINT_KEYS)


def params_of(point: tuple) -> dict[str, Any]:
    return {k: v for k, v in zip(POINT_KEYS, point, strict=True) if v is not None}


# -- the landscape ----------------------------------------------------------------------------
@dataclass
class Landscape:
    """The recorded models, grouped by grid point, and the truth the replays are scored on."""

    settings: SweepSettings
    seeds: dict[tuple, list[dict[str, Any]]]  # point → its recorded models
    median: dict[tuple, float]  # point → median metric over its recorded seeds
    feasible: dict[tuple, bool]  # point → every recorded seed within budget
    best: float  # the best within-budget point's median
    targets: frozenset  # within-budget points within the tolerance of ``best``

    @classmethod
    def load(cls, rows: Sequence[dict[str, Any]], settings: SweepSettings, tolerance: float):
        seeds: dict[tuple, list[dict[str, Any]]] = {}
        for row in rows:
            seeds.setdefault(point_of(row), []).append(row)
        metric = settings.metric_key
        table = [
            {
                **params_of(point_of(r)),
                "setting": repr(point_of(r)),
                "trial_id": f"{point_of(r)}|{r['seed']}",
                "status": "FAILED" if r.get("error") else "FINISHED",
                "seed": r["seed"],
                "recon_nll": r.get("recon_nll"),
                metric: r.get(metric),
            }
            for r in rows
        ]
        points = {repr(p): p for p in seeds}
        by_point = {
            points[s["setting"]]: s for s in group_settings(table, metric, settings.recon_budget)
        }
        median = {p: (s["metric"] or {}).get("median", -math.inf) for p, s in by_point.items()}
        feasible = {p: s["feasible"] for p, s in by_point.items()}
        within = [median[p] for p in seeds if feasible[p]]
        if not within:
            raise SystemExit("the landscape has no point within the reconstruction budget")
        best = max(within)
        targets = frozenset(p for p in seeds if feasible[p] and median[p] >= best - tolerance)
        return cls(settings, seeds, median, feasible, best, targets)

    def snap(self, config: dict[str, Any]) -> tuple:
        """The recorded point nearest a suggested setting, within its family."""
        family = config["objective"]
        axes = FAMILY_AXES[family]
        candidates = [p for p in self.seeds if p[0] == family]
        if not candidates:
            raise SystemExit(f"the landscape has no {family} point to snap {config} to")
        ranges = {
            "beta": self.settings.beta_range,
            "capacity_max": self.settings.capacity_max_range,
            "anneal_fraction": self.settings.anneal_fraction_range,
            "gamma": self.settings.gamma_range,
            "latent_dim": self.settings.latent_dim_range,
        }

        def scaled(axis: str, value: float) -> float:
            lo, hi = ranges[axis]
            if axis in LOG_AXES:
                value, lo, hi = math.log(value), math.log(lo), math.log(hi)
            return 0.0 if hi == lo else (value - lo) / (hi - lo)

        def distance(point: tuple) -> float:
            params = params_of(point)
            return sum(
                (scaled(a, float(config[a])) - scaled(a, float(params[a]))) ** 2 for a in axes
            )

        return min(candidates, key=lambda p: (distance(p), str(p)))

    def regret(self, point: tuple | None) -> float:
        """How far a pick's true median falls short of the best (the best itself when the pick
        is none or not within budget: nothing usable found)."""
        if point is None or not self.feasible[point]:
            return self.best
        return max(0.0, self.best - self.median[point])


def seed_spread(landscape: Landscape, metric: str) -> dict[str, Any] | None:
    """How much of the metric's spread is the setting's and how much the seed's, over the
    points recorded at two seeds or more (None without any); over every point and over the
    points within budget.

    One-way (``seed_sd``, ``setting_sd``, ``setting_share``): a seed's luck is all noise, as
    the replay's random draws make it. ``seed_sd`` is the pooled standard deviation between a
    point's seeds, ``setting_sd`` that of the points' true means, ``setting_share`` the
    setting's share of the variance (the intraclass correlation).

    ``paired``: the seed numbers are shared by every setting (a sweep's replicate r trains
    with seed + r), so part of a seed's luck can be common to all settings. A two-way split
    (setting + seed, over the points recorded at every seed) takes that out: ``seed_offset_sd``
    is the spread of the seeds' common offsets, ``residual_sd`` the noise left when settings
    are compared at equal seeds, and ``setting_share`` the setting's share against it."""

    def scores_of(point: tuple) -> dict[int, float]:
        rows = landscape.seeds[point]
        return {int(r["seed"]): float(r[metric]) for r in rows if is_finite(r.get(metric))}

    def split(points: list[tuple]) -> dict[str, Any] | None:
        scores = [list(scores_of(p).values()) for p in points]
        scores = [s for s in scores if len(s) >= 2]
        if len(scores) < 2:
            return None
        k = float(np.mean([len(s) for s in scores]))  # seeds per point (equal in the grid)
        within = float(np.mean([np.var(s, ddof=1) for s in scores]))
        means_var = float(np.var([np.mean(s) for s in scores], ddof=1))
        between = max(0.0, means_var - within / k)
        total = between + within
        return {
            "points": len(scores),
            "seed_sd": math.sqrt(within),
            "setting_sd": math.sqrt(between),
            "setting_share": between / total if total > 0 else float("nan"),
            "paired": paired(points),
        }

    def paired(points: list[tuple]) -> dict[str, Any] | None:
        seeds = sorted({seed for p in points for seed in scores_of(p)})
        table = [
            [scores_of(p)[s] for s in seeds] for p in points if set(scores_of(p)) >= set(seeds)
        ]
        if len(seeds) < 2 or len(table) < 2:
            return None
        x = np.array(table)  # points × seeds
        n, k = x.shape
        grand = x.mean()
        setting = x.mean(axis=1) - grand
        seed = x.mean(axis=0) - grand
        residual = x - grand - setting[:, None] - seed[None, :]
        ms_residual = float((residual**2).sum() / ((n - 1) * (k - 1)))
        setting_var = max(0.0, (k * float((setting**2).sum()) / (n - 1) - ms_residual) / k)
        offset_var = max(0.0, (n * float((seed**2).sum()) / (k - 1) - ms_residual) / n)
        total = setting_var + ms_residual
        return {
            "points": n,
            "seeds": seeds,
            "seed_offsets": [float(v) for v in seed],
            "seed_offset_sd": math.sqrt(offset_var),
            "residual_sd": math.sqrt(ms_residual),
            "setting_sd": math.sqrt(setting_var),
            "setting_share": setting_var / total if total > 0 else float("nan"),
        }

    everywhere = split(list(landscape.seeds))
    if everywhere is None:
        return None
    feasible = split([p for p in landscape.seeds if landscape.feasible[p]])
    return {"all": everywhere, "within_budget": feasible}


class Oracle:
    """Answers a point with one of its recorded seeds: random order, without replacement."""

    def __init__(self, landscape: Landscape, rng: np.random.Generator) -> None:
        self._landscape = landscape
        self._rng = rng
        self._queue: dict[tuple, list[dict[str, Any]]] = {}

    def draw(self, point: tuple) -> dict[str, Any]:
        queue = self._queue.get(point)
        if not queue:
            rows = self._landscape.seeds[point]
            queue = [rows[i] for i in self._rng.permutation(len(rows))]
            self._queue[point] = queue
        return queue.pop()


class Pick:
    """The sweep's pick as trials end: ``analysis.frontier``'s best within budget (the highest
    median metric among settings whose every seed is within budget; ties: lower median
    recon_nll), recomputed from the scores kept per setting rather than from trial rows, which
    ``frontier_document`` would regroup after every trial."""

    def __init__(self, metric: str, budget: float) -> None:
        self._metric, self._budget = metric, budget
        self._seen: dict[tuple, list[tuple[float, float]]] = {}
        self.best: tuple | None = None

    def add(self, point: tuple, row: dict[str, Any]) -> None:
        score, recon = row.get(self._metric), row.get("recon_nll")
        if row.get("error") or not is_finite(score) or not is_finite(recon):
            return  # a failed trial is counted, never scored
        self._seen.setdefault(point, []).append((float(score), float(recon)))
        ranked = [
            (-float(np.median([s for s, _ in v])), float(np.median([r for _, r in v])), p)
            for p, v in self._seen.items()
            if all(within_budget(r, self._budget) for _, r in v)
        ]
        self.best = min(ranked, key=lambda t: t[:2])[2] if ranked else None


# -- the searchers ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Searcher:
    name: str
    description: str
    plan: SearchPlan | None  # None: the grid


def searchers(settings: SweepSettings) -> list[Searcher]:
    """The searchers replayed; ``settings`` carries the replay's budget as ``num_samples``."""
    own = search_plan(settings)
    random = own.but(sampler="random", replicates=1, initial_points=())
    return [
        Searcher("grid", "every point, disentanglement_lib's order, its seeds in a row", None),
        Searcher("random", "RandomSampler, one seed per setting", random),
        Searcher("sweep", f"the sweep's own plan: {describe(own)}", own),
        Searcher(
            "tpe-startup-4",
            "the sweep's plan with 4 random start-up trials",
            own.but(n_startup_trials=4),
        ),
        Searcher(
            "tpe-group",
            "the sweep's plan, multivariate TPE split by family (group=True)",
            own.but(multivariate=True, group=True),
        ),
        Searcher(
            "tpe-reseed-best",
            "the sweep's plan, a setting's second seed only near the best (margin 0.02)",
            own.but(reseed="near-best", reseed_margin=0.02),
        ),
        Searcher(
            "tpe-1-seed",
            "the sweep's plan with one seed per setting",
            own.but(replicates=1),
        ),
        Searcher(
            "random-reseed-best",
            "RandomSampler, a setting's second seed only near the best (margin 0.02)",
            random.but(replicates=own.replicates, reseed="near-best", reseed_margin=0.02),
        ),
    ]


def describe(plan: SearchPlan) -> str:
    parts = [plan.sampler.upper()]
    if plan.sampler != "random":
        parts.append(f"{plan.n_startup_trials} random start-up trials")
    if plan.group:
        parts.append("grouped")
    seeds = f"{plan.replicates} seed(s) per setting"
    if plan.reseed == "near-best" and plan.replicates > 1:
        seeds += f" (the others only within {plan.reseed_margin:g} of the best)"
    parts.append(seeds)
    if plan.initial_points:
        parts.append(f"{len(plan.initial_points)} starting points")
    return ", ".join(parts)


def grid_order(landscape: Landscape) -> list[tuple]:
    """disentanglement_lib's sweep order: family (β-VAE first, then the annealed-capacity
    family), then its values ascending, the latent size outermost; every seed of a point in
    a row (its ``h.product`` puts the seed last)."""
    family_rank = {"beta": 0, "capacity": 1}
    points = sorted(
        landscape.seeds,
        key=lambda p: (family_rank[p[0]], p[5], *(v if v is not None else -1 for v in p[1:5])),
    )
    return [p for p in points for _ in landscape.seeds[p]]


def replay(
    landscape: Landscape, searcher: Searcher, rep: int, horizon: int, curve_length: int
) -> dict[str, Any]:
    """One replay: the trials it needed (None: not within ``horizon``) and its regret over
    the first ``curve_length`` trials. It stops once both are known."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = landscape.settings
    oracle = Oracle(landscape, np.random.default_rng(10_000 + rep))
    pick = Pick(settings.metric_key, settings.recon_budget)
    curve: list[float] = []
    found: int | None = None

    def record(point: tuple, row: dict[str, Any]) -> None:
        nonlocal found
        pick.add(point, row)
        curve.append(landscape.regret(pick.best))
        if found is None and pick.best in landscape.targets:
            found = len(curve)

    def done() -> bool:
        return len(curve) >= horizon or (found is not None and len(curve) >= curve_length)

    if searcher.plan is None:
        for point in grid_order(landscape)[:horizon]:
            record(point, oracle.draw(point))
            if done():
                break
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GPSampler / group: experimental-feature notices
            tune_searcher = build_searcher(
                settings,
                storage=optuna.storages.InMemoryStorage(),
                plan=searcher.plan.but(seed=rep),
            )
            pending: deque[tuple[str, dict[str, Any]]] = deque()
            asked = 0
            while not done():
                while len(pending) < settings.max_concurrent and asked < horizon:
                    trial_id = f"t{asked:04d}"
                    pending.append((trial_id, tune_searcher.suggest(trial_id)))
                    asked += 1
                trial_id, config = pending.popleft()
                point = landscape.snap(config)
                row = oracle.draw(point)
                result = {"error": row["error"]} if row.get("error") else row
                tune_searcher.on_trial_complete(trial_id, result=result)
                record(point, row)
    return {"searcher": searcher.name, "rep": rep, "found": found, "regret": curve}


# -- the summary --------------------------------------------------------------------------------
def quartiles(values: Iterable[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(list(values), [25, 50, 75])
    return float(q1), float(q2), float(q3)


def summarise(
    outcomes: Sequence[dict[str, Any]],
    names: Sequence[str],
    horizon: int,
    preset_outcomes: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Per searcher: the trials needed over the whole table; the share found by the replays
    of the preset's own sweep (``preset_outcomes``) and their pick's mean regret at its end;
    the share found and the mean regret at trial ``CURVE_LENGTH`` of the long replays."""
    table = []
    for name in names:
        runs = [o for o in outcomes if o["searcher"] == name]
        short = [o for o in preset_outcomes if o["searcher"] == name]
        needed = [o["found"] if o["found"] is not None else horizon + 1 for o in runs]
        q1, q2, q3 = quartiles(needed)
        table.append(
            {
                "searcher": name,
                "reps": len(runs),
                "median": q2,
                "q1": q1,
                "q3": q3,
                "not_found": sum(o["found"] is None for o in runs),
                "found_within_preset": sum(o["found"] is not None for o in short) / len(short),
                f"found_within_{CURVE_LENGTH}": sum(n <= CURVE_LENGTH for n in needed) / len(runs),
                "regret_preset": float(np.mean([o["regret"][-1] for o in short])),
                f"regret_{CURVE_LENGTH}": float(
                    np.mean([o["regret"][min(CURVE_LENGTH, len(o["regret"])) - 1] for o in runs])
                ),
            }
        )
    grid = next(t for t in table if t["searcher"] == "grid")
    for row in table:
        row["ratio_to_grid"] = row["median"] / grid["median"]
    return table


def print_table(table: Sequence[dict[str, Any]], horizon: int, within: int, out=sys.stdout):
    print(
        f"{'searcher':<19} {'trials to best: median [IQR]':>29} {'ratio':>6} "
        f"{'not found':>9} {f'found ≤ {within}':>11} {f'regret @{within}':>10}",
        file=out,
    )
    for t in table:
        spread = f"{t['median']:.0f} [{t['q1']:.0f}–{t['q3']:.0f}]"
        print(
            f"{t['searcher']:<19} {spread:>29} {t['ratio_to_grid']:>6.2f} "
            f"{t['not_found']:>4}/{t['reps']:<4} {t['found_within_preset']:>10.0%} "
            f"{t['regret_preset']:>10.3f}",
            file=out,
        )
    print(f"(not found within {horizon} trials counts as {horizon + 1})", file=out)


def markdown_table(result: dict[str, Any]) -> str:
    """The table as Markdown, for the README and docs/SWEEPS.md."""
    horizon, within = result["horizon"], result["preset_trials"]
    lines = [
        f"| searcher | trials to best: median [IQR] | ratio to grid | found within {within} "
        f"trials | within {CURVE_LENGTH} | mean regret at {within} | at {CURVE_LENGTH} |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in result["table"]:

        def count(x: float) -> str:
            return f">{horizon}" if x > horizon else f"{x:.0f}"

        lines.append(
            f"| {t['searcher']}: {result['searchers'][t['searcher']]} | {count(t['median'])} "
            f"[{count(t['q1'])}–{count(t['q3'])}] | {t['ratio_to_grid']:.2f} | "
            f"{t['found_within_preset']:.0%} | {t[f'found_within_{CURVE_LENGTH}']:.0%} | "
            f"{t['regret_preset']:.3f} | {t[f'regret_{CURVE_LENGTH}']:.3f} |"
        )
    return "\n".join(lines)


def plot(outcomes: Sequence[dict[str, Any]], names: Sequence[str], path: Path, best: float):
    """Left: the mean regret of each searcher's pick; right: the share of replays whose pick
    is a target by each trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    length = min(len(o["regret"]) for o in outcomes)
    x = np.arange(1, length + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        runs = [o for o in outcomes if o["searcher"] == name]
        regret = np.array([o["regret"][:length] for o in runs]).mean(axis=0)
        found = np.array([[o["found"] is not None and o["found"] <= t for t in x] for o in runs])
        width = 2.0 if name in ("sweep", "grid") else 1.0
        (line,) = left.plot(x, regret, label=name, lw=width)
        right.plot(x, found.mean(axis=0), color=line.get_color(), lw=width)
    left.set(xlabel="trials", ylabel="mean regret (best median − pick's median)")
    left.set_ylim(0, best * 1.05)
    left.set_title("Regret of the sweep's pick")
    left.legend(fontsize=8)
    right.set(xlabel="trials", ylabel="share of replays", ylim=(0, 1.02))
    right.set_title("Pick within tolerance of the best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- the command ---------------------------------------------------------------------------------
def _replay_job(args: tuple) -> dict[str, Any]:
    return replay(*args)


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise SystemExit(f"{path}: no landscape recorded yet (run bench/landscape.py)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


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
    chosen = [s for s in searchers(settings) if not only or s.name in (*only, "grid")]
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
