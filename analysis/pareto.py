"""Pareto fronts: which trials no other trial beats on every objective.

Ties and duplicates: a point is dominated only by a point that is at least as good on every
objective and strictly better on one. Two identical points therefore do not dominate each
other, and both are on the front if nothing else beats them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_minimisation(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"values must be a 2-D [n_points, n_objectives] array, got {values.shape}")
    if len(maximize) != values.shape[1]:
        raise ValueError(f"maximize has {len(maximize)} entries for {values.shape[1]} objectives")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite (drop failed or unscored trials first)")
    sign = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    return values * sign


def pareto_mask(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """``[n]`` bool: True where no other point dominates (see the module note on ties).

    ``values`` ``[n, m]``; ``maximize[j]`` says whether objective j is maximised.
    """
    v = _as_minimisation(values, maximize)
    if len(v) == 0:
        return np.zeros(0, dtype=bool)
    no_worse = np.all(v[:, None, :] <= v[None, :, :], axis=2)  # [i, j]: i no worse than j
    better = np.any(v[:, None, :] < v[None, :, :], axis=2)
    dominated = np.any(no_worse & better, axis=0)
    return ~dominated


def hypervolume(values: np.ndarray, reference: Sequence[float], maximize: Sequence[bool]) -> float:
    """The volume dominated by ``values`` and bounded by ``reference`` (exact, any m).

    ``reference`` is in the objectives' own units: for a maximised objective a lower bound
    (e.g. metric 0), for a minimised one an upper bound (e.g. the reconstruction budget).
    Points not strictly better than the reference on every objective add nothing. Exact:
    a sweep for m ≤ 2, slicing along the last objective above that (O(n^m); for the small
    m and n of a sweep).
    """
    v = _as_minimisation(values, maximize)
    ref = np.asarray(reference, dtype=float)
    if ref.shape != (v.shape[1],):
        raise ValueError(f"reference has {ref.size} entries for {v.shape[1]} objectives")
    ref = ref * np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    if not np.all(np.isfinite(ref)):
        raise ValueError("reference must be finite")
    inside = v[np.all(v < ref, axis=1)]
    return float(_hv_min(inside, ref))


def _hv_min(points: np.ndarray, ref: np.ndarray) -> float:
    if len(points) == 0:
        return 0.0
    m = points.shape[1]
    if m == 1:
        return float(ref[0] - points[:, 0].min())
    if m == 2:
        order = np.lexsort((points[:, 1], points[:, 0]))
        total, best_y = 0.0, ref[1]
        for x, y in points[order]:
            if y < best_y:
                total += (ref[0] - x) * (best_y - y)
                best_y = y
        return total
    order = np.argsort(points[:, -1], kind="stable")
    points = points[order]
    total = 0.0
    for i in range(len(points)):
        upper = points[i + 1, -1] if i + 1 < len(points) else ref[-1]
        depth = upper - points[i, -1]
        if depth > 0:
            front = points[: i + 1, :-1]
            front = front[pareto_mask(front, [False] * (m - 1))]
            total += depth * _hv_min(front, ref[:-1])
    return total
