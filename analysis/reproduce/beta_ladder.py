"""Higgins et al. (2017): raising β trades reconstruction for disentanglement. β is stepped up
(1, 4, 16 by default) with several seeds each, and the verdict reads the seed medians:

- ``reproduced``: median ``recon_nll`` rises with every step of β and the median score rises
  with every step too;
- ``partly reproduced``: reconstruction rises with β and the score at the largest β beats
  β's smallest, but not at every step;
- ``not reproduced``: anything else;
- ``not judged``: a single β (``--betas 16``, say): the runs are reported, but the effect is a
  comparison between β values.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from analysis.frontier import spread


def ladder(runs: dict[str, dict[str, Any]], metric_keys: list[str]) -> list[dict[str, Any]]:
    """One row per β (ascending): the seeds' medians and ranges."""
    by_beta: dict[float, list[dict[str, Any]]] = {}
    for run in runs.values():
        by_beta.setdefault(float(run["config"]["beta"]), []).append(run)
    rows = []
    for beta in sorted(by_beta):
        seeds = by_beta[beta]

        def stats(values: list[float]) -> dict[str, float]:
            return {"median": float(np.median(values)), "min": min(values), "max": max(values)}

        rows.append(
            {
                "beta": beta,
                "seeds": sorted(r["config"]["seed"] for r in seeds),
                "recon_nll": stats([r["recon_nll"] for r in seeds]),
                "active_latents": stats([r["scores"]["active_latents"] for r in seeds]),
                "metrics": {k: stats([r["scores"][k] for r in seeds]) for k in metric_keys},
                "values": {k: [r["scores"][k] for r in seeds] for k in metric_keys},
                "recon_values": [r["recon_nll"] for r in seeds],
            }
        )
    return rows


def verdict(rows: list[dict[str, Any]], metric: str) -> tuple[str, str]:
    recon = [r["recon_nll"]["median"] for r in rows]
    score = [r["metrics"][metric]["median"] for r in rows]
    recon_up = all(b > a for a, b in itertools.pairwise(recon))
    score_up = all(b > a for a, b in itertools.pairwise(score))
    steps = ", ".join(
        f"β={r['beta']:g}: recon {a:.1f}, {metric} {b:.3f}"
        for r, a, b in zip(rows, recon, score, strict=True)
    )
    why = f"medians {steps}"
    if len(rows) < 2:
        return "not judged", f"{why}; one β only, and the effect is a comparison between β values"
    if recon_up and score_up:
        return "reproduced", why
    if recon_up and score[-1] > score[0]:
        return "partly reproduced", f"{why}; the score does not rise at every step"
    return "not reproduced", why


def figure(rows: list[dict[str, Any]], metric_keys: list[str], metric: str, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(rows)))
    for row, colour in zip(rows, colours, strict=True):
        left.scatter(row["recon_values"], row["values"][metric], color=colour, alpha=0.35, s=16)
        x, y = row["recon_nll"], row["metrics"][metric]
        left.errorbar(
            x["median"],
            y["median"],
            xerr=[[x["median"] - x["min"]], [x["max"] - x["median"]]],
            yerr=[[y["median"] - y["min"]], [y["max"] - y["median"]]],
            fmt="o",
            color=colour,
            capsize=3,
            label=f"β = {row['beta']:g} ({len(row['seeds'])} seeds)",
        )
    left.set(xlabel="reconstruction NLL (nats per image) ←", ylabel=f"{metric} →")
    left.set_title("Seed medians, bars from min to max, dots = seeds", fontsize=9)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    betas = [r["beta"] for r in rows]
    for key in metric_keys:
        medians = [r["metrics"][key]["median"] for r in rows]
        lows = [r["metrics"][key]["min"] for r in rows]
        highs = [r["metrics"][key]["max"] for r in rows]
        line = right.plot(betas, medians, marker="o", label=key.removeprefix("metric."))
        right.fill_between(betas, lows, highs, color=line[0].get_color(), alpha=0.15)
    right.set_xscale("log", base=2)
    right.set(xlabel="β", ylabel="score (median, band = seed range)")
    right.set_title("Every score against β", fontsize=9)
    right.legend(fontsize=8)
    right.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analyse(runs: dict[str, dict[str, Any]], folder: Path, metric: str) -> dict[str, Any]:
    metric_keys = sorted(
        k
        for k in next(iter(runs.values()))["scores"]
        if k.startswith("metric.") and not k.endswith(("train_accuracy", "num_active_dims"))
    )
    rows = ladder(runs, metric_keys)
    outcome, why = verdict(rows, metric)
    figure(rows, metric_keys, metric, folder / "beta_ladder.png")
    return {
        "verdict": outcome,
        "why": why,
        "metric": metric,
        "ladder": rows,
        "figure": "beta_ladder.png",
    }


def markdown(result: dict[str, Any], protocol: dict[str, Any]) -> str:
    keys = list(result["ladder"][0]["metrics"])
    header = [
        "β",
        "seeds",
        "recon_nll",
        "active latents",
        *(k.removeprefix("metric.") for k in keys),
    ]
    lines = [
        "# β ladder (Higgins et al. 2017)",
        "",
        f"**Verdict: {result['verdict']}** on `{result['metric']}`: {result['why']}.",
        "",
        f"Protocol: {protocol['summary']}. Cells: median [min–max] over the seeds.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in result["ladder"]:
        cells = [
            f"{row['beta']:g}",
            str(len(row["seeds"])),
            spread(row["recon_nll"], 4),
            spread(row["active_latents"], 2),
            *(spread(row["metrics"][k]) for k in keys),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"![β ladder]({result['figure']})", ""]
    return "\n".join(lines)
