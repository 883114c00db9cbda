"""The searchers replayed: the grid in disentanglement_lib's order, the sweep's own plan,
and alternatives that change one choice of a base plan (random sampling or TPE)."""

from __future__ import annotations

from dataclasses import dataclass

from search_replay.table import Landscape
from sweeps.config import SweepSettings
from sweeps.search.plan import SearchPlan, search_plan

#: The cpu preset's plan before the replay chose random sampling: TPE (random for half the
#: sweep's trials, at most 10), these starting points, two seeds per setting. The
#: alternatives change one choice of it, or of random sampling.
FIRST_STARTS = (
    {"objective": "beta", "beta": 2.0, "latent_dim": 10},
    {"objective": "beta", "beta": 8.0, "latent_dim": 10},
    {
        "objective": "capacity",
        "capacity_max": 30.0,
        "anneal_fraction": 0.5,
        "gamma": 100.0,
        "latent_dim": 10,
    },
)
FIRST_REPLICATES = 2


@dataclass(frozen=True)
class Searcher:
    name: str
    description: str
    plan: SearchPlan | None  # None: the grid


def searchers(settings: SweepSettings) -> list[Searcher]:
    """The searchers replayed; ``settings`` carries the replay's budget as ``num_samples``.
    Each alternative changes one choice of a base plan: random sampling or TPE. One whose plan
    is the sweep's own at the replay's budget is the same searcher: ``run`` replays it once,
    as ``sweep``."""
    own = search_plan(settings)
    random = SearchPlan(sampler="random", seed=settings.seed, replicates=1)
    starts = random.but(initial_points=FIRST_STARTS)
    tpe = SearchPlan(
        sampler="tpe",
        n_startup_trials=max(1, min(10, settings.num_samples // 2)),
        seed=settings.seed,
        replicates=FIRST_REPLICATES,
        initial_points=FIRST_STARTS,
    )
    near_best = dict(reseed="near-best", reseed_margin=0.02)
    alternatives = [
        ("random", "RandomSampler, one seed per setting", random),
        ("random-starts", "RandomSampler after the first plan's starting points, one seed", starts),
        (
            "random-2-seeds",
            f"RandomSampler after the starting points, {FIRST_REPLICATES} seeds per setting",
            starts.but(replicates=FIRST_REPLICATES),
        ),
        (
            "random-reseed-best",
            "RandomSampler after the starting points, a setting's second seed only near the "
            "best (margin 0.02)",
            starts.but(replicates=FIRST_REPLICATES, **near_best),
        ),
        ("tpe", f"the plan measured first: {describe(tpe)}", tpe),
        ("tpe-startup-4", "TPE with 4 random start-up trials", tpe.but(n_startup_trials=4)),
        (
            "tpe-startup-half",
            "TPE with half the sweep as random start-up trials (no cap at 10)",
            tpe.but(n_startup_trials=max(1, settings.num_samples // 2)),
        ),
        (
            "tpe-group",
            "TPE, multivariate, split by family (group=True)",
            tpe.but(multivariate=True, group=True),
        ),
        (
            "tpe-reseed-best",
            "TPE, a setting's second seed only near the best (margin 0.02)",
            tpe.but(**near_best),
        ),
        ("tpe-1-seed", "TPE with one seed per setting", tpe.but(replicates=1)),
    ]
    return [
        Searcher("grid", "every point, disentanglement_lib's order, its seeds in a row", None),
        Searcher("sweep", f"the sweep's own plan: {describe(own)}", own),
        *(Searcher(name, text, plan) for name, text, plan in alternatives),
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
