"""Frontier reports: ``python -m analysis.report``.

    python -m analysis.report --tracking-uri sqlite:///mlflow.db --experiment beta-frontier \\
        --out reports/beta-frontier
    python -m analysis.report --tune-dir ray_results/beta-frontier --out reports/beta-frontier

writes into ``--out``: ``report.html`` (one self-contained file, images embedded, opens
offline), ``report.md``, ``frontier.json`` (the frontier document, schema
``betavae.frontier/2``, see :func:`analysis.frontier.frontier_document`), ``trials.parquet``
(every trial) and the PNG figures. Everything shown is read from that one document.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

from analysis import plots
from analysis.frontier import (
    FRONTIER_HEADER,
    SCHEMA,
    EmptySweep,
    format_summary,
    frontier_document,
    frontier_rows,
    spread,
    summary_lines,
)
from analysis.runs import Sweep, SweepNotFound, load_mlflow, load_tune, write_parquet
from analysis.schema import FRONTIER_FILE, TRIALS_FILE
from betavae.command import program_name

__all__ = ["SCHEMA", "EmptySweep", "build_document", "main", "write_report"]

FIGURES = {
    "frontier": "frontier.png",
    "seed_spread": "seed_spread.png",
    "kl_curves": "kl_curves.png",
    "traversals": "traversals.png",
    "correlation": "metric_correlation.png",
}
MAX_PICTURED = 6


def build_document(sweep: Sweep) -> dict[str, Any]:
    """The frontier document of a sweep (raises :class:`EmptySweep` without trials)."""
    return frontier_document(
        sweep.rows(),
        metric=sweep.metric,
        budget=sweep.recon_budget,
        sweep=sweep.settings,
        source=sweep.source,
        scoring=sweep.scoring,
    )


def make_figures(sweep: Sweep, doc: dict[str, Any], out: Path) -> dict[str, Path]:
    """The PNGs. Curves and traversals show each frontier setting's median seed."""
    pictured = {s["median_trial_id"]: s["label"] for s in doc["frontier"][:MAX_PICTURED]}
    metric_keys = [
        c
        for c in sweep.trials.column_names
        if c.startswith("metric.") and not c.endswith(("train_accuracy", "num_active_dims"))
    ]
    return {
        "frontier": plots.frontier(doc, out / FIGURES["frontier"]),
        "seed_spread": plots.seed_spread(doc, out / FIGURES["seed_spread"]),
        "kl_curves": plots.kl_curves(
            {t: sweep.curves(t) for t in pictured}, pictured, out / FIGURES["kl_curves"]
        ),
        "traversals": plots.traversals(
            {t: sweep.artifact(t, "traversals.png") for t in pictured},
            pictured,
            out / FIGURES["traversals"],
        ),
        "correlation": plots.correlation(
            sweep.rows(), [*metric_keys, "recon_nll", "kl"], out / FIGURES["correlation"]
        ),
    }


# -- Markdown and HTML -----------------------------------------------------------------------
CAPTIONS = {
    "frontier": "Reconstruction vs disentanglement per setting: the median of its seeds "
    "(circles: β family, colour = β; squares: capacity family, colour = C_max; hollow = some "
    "seed over the budget), bars from the lowest to the highest seed, faint dots = single "
    "seeds; black line = the frontier of the setting medians; dashed red = the budget.",
    "seed_spread": "The seeds of each setting (dots) and their median (black tick).",
    "kl_curves": "Per-latent KL against training step for the median seed of each frontier "
    "setting (dashed: the capacity target C).",
    "traversals": "Latent traversals of the median seed of each frontier setting: one row per "
    "latent (highest KL first), each column moves that latent over ±2.5 around the posterior "
    "mean.",
    "correlation": "Spearman rank correlation between the scores across finished trials.",
}


def _tables(doc: dict[str, Any]) -> dict[str, tuple[list[str], list[list[str]]]]:
    metric = doc["sweep"]["metric"]
    names = {t["trial_id"]: t["run_name"] or t["trial_id"] for t in doc["trials"]}
    front_header = [metric if h == "metric" else h for h in FRONTIER_HEADER]
    front = [
        [*row, ", ".join(names[t] for t in s["trial_ids"])]
        for row, s in zip(frontier_rows(doc), doc["frontier"], strict=True)
    ]
    every = [
        [
            s["label"],
            str(s["seeds"]),
            str(s["failed"]),
            spread(s["metric"]),
            spread(s["recon_nll"], 4),
            "yes" if s["feasible"] else "no",
            "yes" if s["on_frontier"] else "",
        ]
        for s in doc["settings"]
    ]
    failed = [
        [f["run_name"] or f["trial_id"], _label(doc, f["setting"]), f["error"] or "?"]
        for f in doc["failed"]
    ]
    return {
        "front": ([*front_header, "trials"], front),
        "settings": (
            ["setting", "seeds", "failed", metric, "recon_nll", "within budget", "frontier"],
            every,
        ),
        "failed": (["trial", "setting", "error"], failed),
    }


def _label(doc: dict[str, Any], setting: str | None) -> str:
    return next((s["label"] for s in doc["settings"] if s["setting"] == setting), "?")


def _intro(doc: dict[str, Any]) -> str:
    s = doc["sweep"]
    return (
        f"Preset {s['preset']}, objective {s['objective']}, maximising {s['metric']}; "
        f"source {doc['source']}. A setting is every searched value but the seed; its point "
        "is the median of its seeds, shown as median [min–max]."
    )


def render_markdown(doc: dict[str, Any], figures: dict[str, Path]) -> str:
    s = doc["sweep"]
    out = [f"# Frontier report: {s['name'] or doc['source']}", "", _intro(doc), ""]
    out += [*summary_lines(doc), ""]
    tables = _tables(doc)
    sections = [("Frontier", "front"), ("All settings", "settings")]
    if doc["failed"]:
        sections.append(("Failed trials", "failed"))
    for title, key in sections[:1]:
        out += _md_table(title, *tables[key])
    for key, path in figures.items():
        out += [f"![{key}]({path.name})", "", f"*{CAPTIONS[key]}*", ""]
    for title, key in sections[1:]:
        out += _md_table(title, *tables[key])
    out += [
        f"Machine-readable: `{FRONTIER_FILE}` (schema `{SCHEMA}`), `{TRIALS_FILE}`.",
        "",
    ]
    return "\n".join(out)


def _md_table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    cell = lambda c: c.replace("|", "\\|")  # noqa: E731
    out = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


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
        f"<p>{e(_intro(doc))}</p>",
    ]
    parts += [f"<p>{e(line)}</p>" for line in summary_lines(doc)]
    tables = _tables(doc)

    def table(title: str, header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows)
        return f"<h2>{e(title)}</h2><table><tr>{head}</tr>{body}</table>"

    parts.append(table("Frontier", *tables["front"]))
    for key, path in figures.items():
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(
            f'<figure><img alt="{e(key)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(CAPTIONS[key])}</figcaption></figure>"
        )
    parts.append(table("All settings", *tables["settings"]))
    if doc["failed"]:
        parts.append(table("Failed trials", *tables["failed"]))
    parts.append(
        f"<p>Machine-readable: <code>{FRONTIER_FILE}</code> (schema <code>{SCHEMA}</code>), "
        f"<code>{TRIALS_FILE}</code>.</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    sweep: Sweep, out: str | Path, doc: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write every report file into ``out`` from the frontier document (built here unless
    given); returns the document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    doc = build_document(sweep) if doc is None else doc
    write_parquet(sweep, out / TRIALS_FILE)
    (out / FRONTIER_FILE).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    figures = make_figures(sweep, doc, out)
    (out / "report.md").write_text(render_markdown(doc, figures))
    (out / "report.html").write_text(render_html(doc, figures))
    return doc


# -- command line ----------------------------------------------------------------------------
PROG = program_name("python -m analysis.report")


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
    print(format_summary(doc))
    print(f"report: {Path(args.out) / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
