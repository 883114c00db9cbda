"""The recorded landscape: models grouped by grid point, the truth the replays are scored on
(the best within-budget median and the points near it), how noisy the score is, and how a
suggested setting snaps to the nearest recorded point."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.frontier import group_settings, is_finite
from sweeps.config import SweepSettings

POINT_KEYS = ("objective", "beta", "capacity_max", "anneal_fraction", "gamma", "latent_dim")
FAMILY_AXES = {
    "beta": ("beta", "latent_dim"),
    "capacity": ("capacity_max", "anneal_fraction", "gamma", "latent_dim"),
}
LOG_AXES = ("beta", "gamma")  # sampled log-uniform by sweeps.search.space


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


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise SystemExit(f"{path}: no landscape recorded yet (run bench/landscape.py)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
