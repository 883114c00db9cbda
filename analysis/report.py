"""Frontier reports: ``python -m analysis.report``.

    python -m analysis.report --tracking-uri sqlite:///mlflow.db --experiment beta-frontier \\
        --out reports/beta-frontier
    python -m analysis.report --tune-dir ray_results/beta-frontier --out reports/beta-frontier

writes into ``--out``: ``report.html`` (one self-contained file, images embedded, opens
offline), ``report.md``, ``frontier.json`` (schema ``betavae.frontier/1``, see
:func:`frontier_document`), ``trials.parquet`` (every trial) and the PNG figures.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from analysis import plots
from analysis.pareto import hypervolume, pareto_mask
from analysis.runs import (
    PARAMS,
    Sweep,
    SweepNotFound,
    is_finite,
    load_mlflow,
    load_tune,
    scored_trials,
    write_parquet,
)
from sweeps.space import describe

SCHEMA = "betavae.frontier/1"
FIGURES = {
    "frontier": "frontier.png",
    "seed_spread": "seed_spread.png",
    "kl_curves": "kl_curves.png",
    "traversals": "traversals.png",
    "correlation": "metric_correlation.png",
}
MAX_PICTURED = 6


class EmptySweep(ValueError):
    """The sweep has no trials at all."""


@dataclass
class Frontier:
    rows: list[dict[str, Any]]
    scored: list[dict[str, Any]]
    front: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    best: dict[str, Any] | None
    hypervolume: float | None
    reference: dict[str, float] | None


def compute_frontier(sweep: Sweep) -> Frontier:
    """Scored trials, their Pareto front (metric ↑, recon_nll ↓), the best within budget and
    the hypervolume against the reference (metric 0, recon_nll = the budget; without a budget,
    the largest recon_nll seen)."""
    rows = sweep.rows()
    if not rows:
        raise EmptySweep(f"sweep {sweep.source} has no trials yet: nothing to report")
    metric, budget = sweep.metric, sweep.recon_budget
    scored = scored_trials(rows, metric)
    failed = [r for r in rows if r["status"] == "FAILED"]
    front: list[dict[str, Any]] = []
    hv = reference = None
    if scored:
        values = np.array([[r[metric], r["recon_nll"]] for r in scored])
        mask = pareto_mask(values, [True, False])
        front = sorted(
            (r for r, m in zip(scored, mask, strict=True) if m),
            key=lambda r: (r["recon_nll"], -r[metric]),
        )
        recon_ref = budget if budget is not None else float(values[:, 1].max())
        reference = {metric: 0.0, "recon_nll": recon_ref}
        hv = hypervolume(values, [0.0, recon_ref], [True, False])
    feasible = [r for r in scored if budget is None or r["recon_nll"] <= budget]
    best = max(feasible, key=lambda r: r[metric]) if feasible else None
    return Frontier(rows, scored, front, failed, best, hv, reference)


def _point(r: dict[str, Any], metric_keys: Sequence[str]) -> dict[str, Any]:
    return {
        "trial_id": r["trial_id"],
        "run_id": r["run_id"],
        "run_name": r["run_name"],
        "setting": r["setting"],
        "feasible": r["feasible"],
        "params": {k: r.get(k) for k in PARAMS},
        "metrics": {
            k: r.get(k)
            for k in ("recon_nll", "kl", "active_latents", *metric_keys)
            if is_finite(r.get(k))
        },
    }


def frontier_document(sweep: Sweep, f: Frontier) -> dict[str, Any]:
    """``frontier.json``, schema ``betavae.frontier/1``:

    - ``schema``: this version string; ``source``: where the sweep was read;
    - ``sweep``: ``name``, ``preset``, ``objective``, ``metric`` (the maximised score's key),
      ``recon_budget`` (nats, null if none), ``settings`` (everything the sweep ran with);
    - ``objectives``: ``[{key, direction}]`` — the metric (``max``), ``recon_nll`` (``min``);
    - ``counts``: ``trials``, ``finished``, ``scored``, ``failed``, ``running``, ``feasible``;
    - ``hypervolume``: ``{value, reference: {metric: 0, recon_nll: budget}}`` (null if no
      scored trial): the area the frontier dominates up to the reference point;
    - ``best_feasible``: the highest-metric trial within budget, or null;
    - ``frontier``: the non-dominated trials by increasing ``recon_nll``, each with
      ``trial_id``, ``run_id`` (MLflow; null from a Tune folder), ``run_name``, ``setting``,
      ``feasible``, ``params`` and ``metrics`` (every finite score);
    - ``failed``: ``[{trial_id, run_id, run_name, error, params}]``.
    """
    metric_keys = [c for c in sweep.trials.column_names if c.startswith("metric.")]
    settings = sweep.settings
    return {
        "schema": SCHEMA,
        "source": sweep.source,
        "sweep": {
            "name": settings.get("name"),
            "preset": settings.get("preset"),
            "objective": settings.get("objective"),
            "metric": sweep.metric,
            "recon_budget": sweep.recon_budget,
            "settings": settings,
        },
        "objectives": [
            {"key": sweep.metric, "direction": "max"},
            {"key": "recon_nll", "direction": "min"},
        ],
        "counts": {
            "trials": len(f.rows),
            "finished": sum(r["status"] == "FINISHED" for r in f.rows),
            "scored": len(f.scored),
            "failed": len(f.failed),
            "running": sum(r["status"] == "RUNNING" for r in f.rows),
            "feasible": sum(
                1
                for r in f.scored
                if sweep.recon_budget is None or r["recon_nll"] <= sweep.recon_budget
            ),
        },
        "hypervolume": None
        if f.hypervolume is None
        else {"value": f.hypervolume, "reference": f.reference},
        "best_feasible": _point(f.best, metric_keys) if f.best else None,
        "frontier": [_point(r, metric_keys) for r in f.front],
        "failed": [
            {
                "trial_id": r["trial_id"],
                "run_id": r["run_id"],
                "run_name": r["run_name"],
                "error": r["error"],
                "params": {k: r.get(k) for k in PARAMS},
            }
            for r in f.failed
        ],
    }


def make_figures(sweep: Sweep, f: Frontier, out: Path) -> dict[str, Path]:
    metric = sweep.metric
    front_ids = {r["trial_id"] for r in f.front}
    pictured = f.front[:MAX_PICTURED]
    labels = {r["trial_id"]: describe(r) for r in pictured}
    metric_keys = [
        c
        for c in sweep.trials.column_names
        if c.startswith("metric.") and not c.endswith(("train_accuracy", "num_active_dims"))
    ]
    return {
        "frontier": plots.frontier(
            f.rows,
            front_ids,
            out / FIGURES["frontier"],
            metric=metric,
            budget=sweep.recon_budget,
            failed=len(f.failed),
        ),
        "seed_spread": plots.seed_spread(f.rows, out / FIGURES["seed_spread"], metric=metric),
        "kl_curves": plots.kl_curves(
            {t: sweep.curves(t) for t in labels}, labels, out / FIGURES["kl_curves"]
        ),
        "traversals": plots.traversals(
            {t: sweep.artifact(t, "traversals.png") for t in labels},
            labels,
            out / FIGURES["traversals"],
        ),
        "correlation": plots.correlation(
            f.rows, [*metric_keys, "recon_nll", "kl"], out / FIGURES["correlation"]
        ),
    }


# -- Markdown and HTML -----------------------------------------------------------------------
CAPTIONS = {
    "frontier": "Reconstruction vs disentanglement for every scored trial. Circles: β family "
    "(colour = β); squares: capacity family (colour = C_max); hollow = over the budget; black "
    "line = the Pareto frontier; dashed red = the budget.",
    "seed_spread": "Each setting's mean over its seeds, bars from the lowest to the highest seed.",
    "kl_curves": "Per-latent KL against training step for the frontier models (dashed: the "
    "capacity target C).",
    "traversals": "Latent traversals of the frontier models: one row per latent (highest KL "
    "first), each column moves that latent over ±2.5 around the posterior mean.",
    "correlation": "Spearman rank correlation between the scores across finished trials.",
}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value)


def _tables(doc: dict[str, Any]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    metric = doc["sweep"]["metric"]
    header = ["recon_nll", metric, "feasible", "setting", "seed", "trial"]
    front = [
        [
            _fmt(p["metrics"].get("recon_nll"), 4),
            _fmt(p["metrics"].get(metric)),
            _fmt(p["feasible"]),
            _setting(p["params"]),
            _fmt(p["params"]["seed"]),
            p["run_name"] or p["trial_id"],
        ]
        for p in doc["frontier"]
    ]
    failed = [
        [f["run_name"] or f["trial_id"], _setting(f["params"]), f["error"] or "?"]
        for f in doc["failed"]
    ]
    return header, front, failed


def _setting(p: dict[str, Any]) -> str:
    if p.get("objective") == "capacity":
        return (
            f"capacity C_max={_fmt(p.get('capacity_max'))}, γ={_fmt(p.get('gamma'))}, "
            f"anneal {_fmt(p.get('capacity_anneal_steps'))} steps, z={p.get('latent_dim')}"
        )
    return f"β={_fmt(p.get('beta'))}, z={p.get('latent_dim')}"


def _summary_lines(doc: dict[str, Any]) -> list[str]:
    s, c, metric = doc["sweep"], doc["counts"], doc["sweep"]["metric"]
    budget = s["recon_budget"]
    lines = [
        f"{c['trials']} trials: {c['finished']} finished, {c['failed']} failed, "
        f"{c['running']} unfinished; {c['feasible']} within the budget "
        f"recon_nll ≤ {_fmt(budget)} nats.",
    ]
    best = doc["best_feasible"]
    if best:
        lines.append(
            f"Best within budget: {metric} = {_fmt(best['metrics'][metric])} at "
            f"recon_nll {_fmt(best['metrics']['recon_nll'], 4)} "
            f"({_setting(best['params'])}, seed {best['params']['seed']})."
        )
    elif c["scored"]:
        lines.append("No scored trial is within the budget.")
    else:
        lines.append("No trial finished with scores: the frontier is empty.")
    hv = doc["hypervolume"]
    if hv:
        ref = hv["reference"]
        lines.append(
            f"Hypervolume {hv['value']:.4g} (reference point: {metric} = "
            f"{_fmt(ref[metric])}, recon_nll = {_fmt(ref['recon_nll'], 4)})."
        )
    return lines


def render_markdown(doc: dict[str, Any], figures: dict[str, Path]) -> str:
    s = doc["sweep"]
    out = [
        f"# Frontier report: {s['name'] or doc['source']}",
        "",
        f"Preset `{s['preset']}`, objective `{s['objective']}`, maximising `{s['metric']}`; "
        f"source `{doc['source']}`.",
        "",
    ]
    out += [*_summary_lines(doc), ""]
    header, front, failed = _tables(doc)
    out += ["## Frontier", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in front]
    out.append("")
    for key, path in figures.items():
        out += [f"![{key}]({path.name})", "", f"*{CAPTIONS[key]}*", ""]
    if failed:
        out += ["## Failed trials", "", "| trial | setting | error |", "|---|---|---|"]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in failed]
        out.append("")
    out += [
        "Machine-readable: `frontier.json` (schema `betavae.frontier/1`), `trials.parquet`.",
        "",
    ]
    return "\n".join(out)


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;font-size:.9em;margin:1em 0}th,td{border:1px solid
#ccc;padding:.3em .6em;text-align:left}th{background:#f3f3f3}img{max-width:100%;height:auto}
figure{margin:1.5em 0}figcaption{font-size:.85em;color:#555}code{background:#f3f3f3;padding:0
.2em}"""


def render_html(doc: dict[str, Any], figures: dict[str, Path]) -> str:
    """One self-contained page: inline CSS, images as data URIs, no scripts, no links out."""
    e = html.escape
    s = doc["sweep"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Frontier report: {e(str(s['name']))}</title><style>{_CSS}</style>",
        "</head><body>",
        f"<h1>Frontier report: {e(str(s['name'] or doc['source']))}</h1>",
        f"<p>Preset <code>{e(str(s['preset']))}</code>, objective "
        f"<code>{e(str(s['objective']))}</code>, maximising <code>{e(s['metric'])}</code>; "
        f"source <code>{e(doc['source'])}</code>.</p>",
    ]
    parts += [f"<p>{e(line)}</p>" for line in _summary_lines(doc)]
    header, front, failed = _tables(doc)
    parts.append(
        "<h2>Frontier</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
    )
    parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in front]
    parts.append("</table>")
    for key, path in figures.items():
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(
            f'<figure><img alt="{e(key)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(CAPTIONS[key])}</figcaption></figure>"
        )
    if failed:
        parts.append(
            "<h2>Failed trials</h2><table><tr><th>trial</th><th>setting</th><th>error</th></tr>"
        )
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in failed]
        parts.append("</table>")
    parts.append(
        "<p>Machine-readable: <code>frontier.json</code> (schema "
        "<code>betavae.frontier/1</code>), <code>trials.parquet</code>.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(sweep: Sweep, out: str | Path) -> dict[str, Any]:
    """Write every report file into ``out``; returns the ``frontier.json`` document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    f = compute_frontier(sweep)
    doc = frontier_document(sweep, f)
    write_parquet(sweep, out / "trials.parquet")
    (out / "frontier.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    figures = make_figures(sweep, f, out)
    (out / "report.md").write_text(render_markdown(doc, figures))
    (out / "report.html").write_text(render_html(doc, figures))
    return doc


# -- command line ----------------------------------------------------------------------------
PROG = "python -m analysis.report"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog=PROG, description="Write a sweep's frontier report.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--tracking-uri", help="MLflow tracking URI (with --experiment)")
    src.add_argument("--tune-dir", help="a Tune results folder, e.g. ray_results/beta-frontier")
    p.add_argument("--experiment", help="MLflow experiment (= sweep) name")
    p.add_argument("--out", required=True, help="output folder")
    args = p.parse_args(argv)
    if args.tracking_uri and not args.experiment:
        p.error("--experiment is required with --tracking-uri")
    try:
        sweep = (
            load_mlflow(args.tracking_uri, args.experiment)
            if args.tracking_uri
            else load_tune(args.tune_dir)
        )
        doc = write_report(sweep, args.out)
    except (SweepNotFound, EmptySweep) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    for line in _summary_lines(doc):
        print(line)
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
