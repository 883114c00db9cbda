"""A sweep's frontier over *settings*: the document behind every summary of a sweep.

Seed variance dominates disentanglement scores (Locatello et al. 2019), so one lucky seed must
not put a setting on the front. The seeds of a setting (every searched value but the seed)
are therefore aggregated first:

- a setting's point is the **median** over its scored seeds of the metric and of
  ``recon_nll``; its spread is their min and max;
- a setting is **within budget** when every one of its scored seeds is
  (``recon_nll ≤ budget``);
- the **frontier** is the set of settings whose median point no other setting's beats on both
  objectives (metric ↑, recon_nll ↓); **best within budget** is the within-budget setting of
  highest median metric (ties: lower median recon_nll); the **hypervolume** is taken over the
  setting medians.

A *scored* trial finished with a finite metric and ``recon_nll``; trials that failed or are
still running are counted and listed, never scored. :func:`frontier_document` computes all of
it once; ``frontier.json``, the sweep's ``summary.json``, its printed summary and the report
are that one document (schema ``betavae.frontier/2``, described on the function).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from analysis.pareto import hypervolume, pareto_mask
from analysis.schema import PARAMS, SETTING_PARAMS, setting_label

SCHEMA = "betavae.frontier/2"
#: Final values summarised per setting besides the ``metric.*`` scores.
SUMMARISED = ("recon_nll", "kl", "active_latents")


class EmptySweep(ValueError):
    """The sweep has no trials at all."""


def is_finite(value: Any) -> bool:
    """A real, finite number (a missing or NaN score is not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def is_scored(row: Mapping[str, Any], metric: str) -> bool:
    """A finished trial with a finite ``metric`` and ``recon_nll``: a point of its setting."""
    return (
        row.get("status") == "FINISHED"
        and is_finite(row.get(metric))
        and is_finite(row.get("recon_nll"))
    )


def within_budget(recon_nll: float, budget: float | None) -> bool:
    return budget is None or recon_nll <= budget


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": float(np.median(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
    }


def _trial(row: Mapping[str, Any], metric_keys: Sequence[str], budget: float | None) -> dict:
    metrics = {k: row[k] for k in (*SUMMARISED, *metric_keys) if is_finite(row.get(k))}
    recon = metrics.get("recon_nll")
    return {
        "trial_id": row["trial_id"],
        "run_id": row.get("run_id"),
        "run_name": row.get("run_name"),
        "setting": row.get("setting"),
        "status": row["status"],
        "error": row.get("error"),
        "seed": row.get("seed"),
        "feasible": None if recon is None else within_budget(recon, budget),
        "params": {k: row.get(k) for k in PARAMS},
        "metrics": metrics,
    }


def group_settings(
    rows: Iterable[Mapping[str, Any]],
    metric: str,
    budget: float | None,
    metric_keys: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """One entry per setting (first-seen order), its seeds aggregated (module docstring).

    Each entry: ``setting`` (id), ``label``, ``params`` (shared by its seeds), ``trial_ids``
    (every trial), ``seeds`` (scored), ``failed``, ``running``, ``seed_values`` (the scored
    seeds), ``median_trial_id`` (the scored seed whose metric is nearest the median),
    ``metric`` and ``recon_nll`` (``{median, min, max}``, null when nothing is scored),
    ``metrics`` (the same for every summarised value), ``feasible``.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("setting") or row["trial_id"]), []).append(row)
    out = []
    for key, members in groups.items():
        scored = [r for r in members if is_scored(r, metric)]
        values = {
            k: [float(r[k]) for r in scored if is_finite(r.get(k))]
            for k in (*SUMMARISED, *metric_keys, metric)
        }
        params = {k: members[0].get(k) for k in SETTING_PARAMS}
        entry: dict[str, Any] = {
            "setting": key,
            "label": setting_label(params) if params.get("objective") else key,
            "params": params,
            "trial_ids": [r["trial_id"] for r in members],
            "seeds": len(scored),
            "failed": sum(r.get("status") == "FAILED" for r in members),
            "running": sum(r.get("status") not in ("FINISHED", "FAILED") for r in members),
            "seed_values": sorted(r.get("seed") for r in scored if r.get("seed") is not None),
            "median_trial_id": None,
            "metric": _stats(values[metric]),
            "recon_nll": _stats(values["recon_nll"]),
            "metrics": {k: s for k, v in values.items() if (s := _stats(v)) is not None},
            "feasible": bool(scored)
            and all(within_budget(float(r["recon_nll"]), budget) for r in scored),
        }
        if scored:
            median = entry["metric"]["median"]
            nearest = min(scored, key=lambda r: (abs(float(r[metric]) - median), r["trial_id"]))
            entry["median_trial_id"] = nearest["trial_id"]
        out.append(entry)
    return out


def _front(settings: list[dict[str, Any]], budget: float | None) -> tuple[list, Any, Any]:
    """Frontier settings (by median recon_nll), hypervolume and its reference point."""
    scored = [s for s in settings if s["seeds"]]
    if not scored:
        return [], None, None
    values = np.array([[s["metric"]["median"], s["recon_nll"]["median"]] for s in scored])
    mask = pareto_mask(values, [True, False])
    front = sorted(
        (s for s, m in zip(scored, mask, strict=True) if m),
        key=lambda s: (s["recon_nll"]["median"], -s["metric"]["median"]),
    )
    recon_ref = budget if budget is not None else float(values[:, 1].max())
    return front, hypervolume(values, [0.0, recon_ref], [True, False]), recon_ref


def frontier_document(
    rows: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    budget: float | None,
    sweep: Mapping[str, Any],
    source: str,
    scoring: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The frontier document, schema ``betavae.frontier/2``:

    - ``schema``; ``source`` (where the sweep was read); ``sweep`` (``name``, ``preset``,
      ``objective``, ``metric`` = the maximised score's key, ``recon_budget`` in nats or
      null, ``settings`` = everything the sweep ran with);
    - ``scoring``: how the scores were measured (metric mode, DCI predictor, sample sizes,
      logistic-regression protocol), or null when the sweep did not record it;
    - ``objectives``: ``[{key, direction}]`` — the metric ``max``, ``recon_nll`` ``min``;
    - ``aggregation``: how seeds become a setting's point (median; range min–max; within
      budget when every scored seed is);
    - ``counts``: ``trials``, ``finished``, ``scored``, ``failed``, ``running``,
      ``feasible_trials``, ``settings``, ``scored_settings``, ``feasible_settings``;
    - ``hypervolume``: ``{value, reference: {metric: 0, recon_nll: budget}}`` over the
      setting medians (null if nothing is scored);
    - ``best_feasible``: the best setting within budget, or null;
    - ``frontier``: the non-dominated settings by increasing median ``recon_nll``;
    - ``settings``: every setting (see :func:`group_settings`; plus ``on_frontier``), by
      decreasing median metric, unscored ones last;
    - ``trials``: every trial — ``trial_id``, ``run_id``, ``run_name``, ``setting``,
      ``status``, ``error``, ``seed``, ``feasible``, ``params``, ``metrics``;
    - ``failed``: the failed trials (``trial_id``, ``run_id``, ``run_name``, ``setting``,
      ``error``, ``params``).

    ``rows`` are trial-table rows (``analysis.runs``); raises :class:`EmptySweep` without any.
    """
    if not rows:
        raise EmptySweep(f"sweep {source} has no trials yet: nothing to report")
    metric_keys = sorted({k for r in rows for k in r if k.startswith("metric.")})
    settings = group_settings(rows, metric, budget, metric_keys)
    front, hv, recon_ref = _front(settings, budget)
    on_front = {s["setting"] for s in front}
    for s in settings:
        s["on_frontier"] = s["setting"] in on_front
    settings.sort(key=lambda s: (s["seeds"] == 0, -(s["metric"] or {}).get("median", 0.0)))
    feasible = [s for s in settings if s["feasible"]]
    best = min(
        feasible,
        key=lambda s: (-s["metric"]["median"], s["recon_nll"]["median"]),
        default=None,
    )
    trials = [_trial(r, metric_keys, budget) for r in rows]
    failed = [t for t in trials if t["status"] == "FAILED"]
    return {
        "schema": SCHEMA,
        "source": source,
        "sweep": {
            "name": sweep.get("name"),
            "preset": sweep.get("preset"),
            "objective": sweep.get("objective"),
            "metric": metric,
            "recon_budget": budget,
            "settings": dict(sweep),
        },
        "scoring": dict(scoring) if scoring else None,
        "objectives": [
            {"key": metric, "direction": "max"},
            {"key": "recon_nll", "direction": "min"},
        ],
        "aggregation": {
            "point": "median over the scored seeds of a setting",
            "range": "min and max over the scored seeds",
            "within_budget": "every scored seed has recon_nll <= recon_budget",
        },
        "counts": {
            "trials": len(trials),
            "finished": sum(t["status"] == "FINISHED" for t in trials),
            "scored": sum(s["seeds"] for s in settings),
            "failed": len(failed),
            "running": sum(t["status"] not in ("FINISHED", "FAILED") for t in trials),
            "feasible_trials": sum(
                is_scored(r, metric) and within_budget(float(r["recon_nll"]), budget) for r in rows
            ),
            "settings": len(settings),
            "scored_settings": sum(s["seeds"] > 0 for s in settings),
            "feasible_settings": len(feasible),
        },
        "hypervolume": None
        if hv is None
        else {"value": hv, "reference": {metric: 0.0, "recon_nll": recon_ref}},
        "best_feasible": best,
        "frontier": front,
        "settings": settings,
        "trials": trials,
        "failed": [
            {k: t[k] for k in ("trial_id", "run_id", "run_name", "setting", "error", "params")}
            for t in failed
        ],
    }


# -- the summary people read ------------------------------------------------------------------
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def spread(stats: Mapping[str, float] | None, digits: int = 3) -> str:
    """``median [min–max]`` of a setting's seeds (just the value for one seed)."""
    if not stats:
        return "–"
    median = _fmt(stats["median"], digits)
    if stats["min"] == stats["max"]:
        return median
    return f"{median} [{_fmt(stats['min'], digits)}–{_fmt(stats['max'], digits)}]"


def scoring_line(scoring: Mapping[str, Any] | None) -> str:
    """One line on how the scores were measured."""
    if not scoring:
        return "Scores: how they were measured was not recorded with this sweep."
    return (
        f"Scores in {scoring.get('mode', '?')} mode: DCI predictor "
        f"{scoring.get('predictor', '?')}, {scoring.get('num_train', '?')}/"
        f"{scoring.get('num_test', '?')} coded points (train/test), β-VAE and FactorVAE "
        f"classifiers on {scoring.get('sampling_train', '?')}/"
        f"{scoring.get('sampling_eval', '?')} points, logistic regression "
        f"{scoring.get('logistic', '?')}."
    )


def summary_lines(doc: Mapping[str, Any]) -> list[str]:
    """The sweep's summary in sentences: counts, best within budget, hypervolume, scoring."""
    c, metric, budget = doc["counts"], doc["sweep"]["metric"], doc["sweep"]["recon_budget"]
    lines = [
        f"{c['trials']} trials: {c['finished']} finished, {c['failed']} failed, "
        f"{c['running']} unfinished; {c['settings']} settings, {c['feasible_settings']} "
        f"within the budget recon_nll ≤ {_fmt(budget)} nats (every seed).",
    ]
    best = doc["best_feasible"]
    if best:
        lines.append(
            f"Best within budget: {best['label']} — {metric} median {spread(best['metric'])}, "
            f"recon_nll median {spread(best['recon_nll'], 4)} over {best['seeds']} "
            f"seed{'s' if best['seeds'] != 1 else ''}."
        )
    elif c["scored"]:
        lines.append("No setting is within the budget on every seed.")
    else:
        lines.append("No trial finished with scores: the frontier is empty.")
    hv = doc["hypervolume"]
    if hv:
        ref = hv["reference"]
        lines.append(
            f"Hypervolume {hv['value']:.4g} over the setting medians (reference point: "
            f"{metric} = {_fmt(ref[metric])}, recon_nll = {_fmt(ref['recon_nll'], 4)})."
        )
    lines.append(scoring_line(doc.get("scoring")))
    return lines


FRONTIER_HEADER = ("recon_nll", "metric", "seeds", "within budget", "setting")


def frontier_rows(doc: Mapping[str, Any]) -> list[list[str]]:
    """The frontier as table rows: ``FRONTIER_HEADER`` (medians with their seed ranges)."""
    return [
        [
            spread(s["recon_nll"], 4),
            spread(s["metric"]),
            str(s["seeds"]),
            _fmt(s["feasible"]),
            s["label"],
        ]
        for s in doc["frontier"]
    ]


def format_summary(doc: Mapping[str, Any]) -> str:
    """What the sweep prints when it ends: the summary, the frontier table, the failures."""
    metric = doc["sweep"]["metric"]
    lines = [f"sweep {doc['sweep']['name']!r}:", *summary_lines(doc)]
    rows = frontier_rows(doc)
    if rows:
        header = [h if h != "metric" else metric for h in FRONTIER_HEADER]
        table = [header, *rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines.append(f"frontier over settings ({metric} ↑, recon_nll ↓; median [min–max]):")
        for row in table:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    for f in doc["failed"]:
        lines.append(f"failed: {f['run_name'] or f['trial_id']}: {f['error']}")
    return "\n".join(lines)
