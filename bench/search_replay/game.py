"""One replay: a searcher asks for settings, the oracle answers with recorded seeds, and the
sweep's own pick is scored against the landscape's truth after every trial."""

from __future__ import annotations

import warnings
from collections import deque
from typing import Any

import numpy as np

from analysis.frontier import is_finite, within_budget
from search_replay.searchers import Searcher, grid_order
from search_replay.table import Landscape
from sweeps.search.plan import build_searcher


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
                optuna.storages.InMemoryStorage(),
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
