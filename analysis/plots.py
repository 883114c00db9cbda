"""The report's figures, rendered headless with matplotlib (Agg). Each returns its PNG path.

Conventions: x = reconstruction NLL (nats, lower is better), y = the disentanglement metric
(higher is better). A setting (every searched value but the seed) is drawn at the median of
its seeds with bars from the lowest to the highest seed; its seeds are faint dots behind it.
β-family settings are circles coloured by log β, capacity-family settings squares coloured by
C_max; filled = within the budget on every seed, hollow = not; failed trials are counted, not
plotted (they have no scores). The figures draw the frontier document
(``analysis.frontier``); they compute nothing of their own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm, Normalize

from analysis.frontier import is_finite

DPI = 110
_FAMILIES = {  # marker, colour map, parameter, its scale, colour-bar label
    "beta": ("o", "viridis", "beta", LogNorm, "β"),
    "capacity": ("s", "plasma", "capacity_max", Normalize, "C_max (nats)"),
}


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _empty(path: Path, message: str, size: tuple[float, float] = (6.4, 4.0)) -> Path:
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True)
    return _save(fig, path)


#: Past this many scored settings the frontier plot draws the trials as a density (hexbin)
#: and only the frontier's settings as points; the seed plot shows the best SPREAD_ROWS.
DENSE_SETTINGS = 300
SPREAD_ROWS = 60


def _colours(fig: Any, ax: Any, settings: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A colour per setting (by its family's parameter) and one colour bar per family."""
    colours: dict[str, Any] = {}
    for family, (_, cmap, key, norm_cls, label) in _FAMILIES.items():
        group = [s for s in settings if s["params"].get("objective") == family]
        if not group:
            continue
        values = np.array([s["params"][key] for s in group], dtype=float)
        low, high = float(values.min()), float(values.max())
        if norm_cls is LogNorm:
            low = max(low, 1e-3)
        norm = norm_cls(vmin=low, vmax=high if high > low else low * 1.01 + 1e-9)
        for s, colour in zip(group, plt.get_cmap(cmap)(norm(values)), strict=True):
            colours[s["setting"]] = colour
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mappable, ax=ax, label=f"{family} family: {label}", pad=0.01)
    return colours


def frontier(doc: Mapping[str, Any], path: Path) -> Path:
    """Every scored setting (median, seed range, faint seeds), the frontier, the budget."""
    metric, budget = doc["sweep"]["metric"], doc["sweep"]["recon_budget"]
    failed = doc["counts"]["failed"]
    settings = [s for s in doc["settings"] if s["seeds"]]
    if not settings:
        return _empty(path, f"No finished trial has {metric} and recon_nll ({failed} failed).")
    fig, ax = plt.subplots(figsize=(7.6, 5.0), layout="constrained")
    trials = {t["trial_id"]: t for t in doc["trials"]}
    dense = len(settings) > DENSE_SETTINGS
    if dense:  # thousands of points: their density, and the frontier settings drawn over it
        _density(fig, ax, [t["metrics"] for t in trials.values()], metric)
        drawn = {s["setting"] for s in doc["frontier"]}
        colours = _colours(fig, ax, [s for s in settings if s["setting"] in drawn])
        settings_drawn = [s for s in settings if s["setting"] in drawn]
    else:
        colours = _colours(fig, ax, settings)
        settings_drawn = settings
    for s in settings_drawn:
        marker = _FAMILIES.get(s["params"].get("objective"), ("o",))[0]
        colour = colours.get(s["setting"], "grey")
        seeds = [trials[t]["metrics"] for t in s["trial_ids"] if t in trials]
        seeds = [m for m in seeds if is_finite(m.get(metric)) and is_finite(m.get("recon_nll"))]
        ax.scatter(
            [m["recon_nll"] for m in seeds],
            [m[metric] for m in seeds],
            marker=marker,
            s=14,
            color=colour,
            alpha=0.3,
            linewidths=0,
            zorder=2,
        )
        x, y = s["recon_nll"], s["metric"]
        ax.errorbar(
            x["median"],
            y["median"],
            xerr=[[x["median"] - x["min"]], [x["max"] - x["median"]]],
            yerr=[[y["median"] - y["min"]], [y["max"] - y["median"]]],
            fmt="none",
            ecolor=colour,
            elinewidth=0.9,
            alpha=0.7,
            zorder=3,
        )
        ax.scatter(
            x["median"],
            y["median"],
            marker=marker,
            s=52,
            linewidths=1.4,
            facecolors=colour if s["feasible"] else "none",
            edgecolors=colour,
            zorder=4,
        )
    front = doc["frontier"]
    if front:
        ax.step(
            [s["recon_nll"]["median"] for s in front],
            [s["metric"]["median"] for s in front],
            where="post",
            color="black",
            linewidth=1.2,
            label="frontier of the setting medians",
            zorder=1,
        )
    if budget is not None:
        ax.axvline(
            budget, color="crimson", linestyle="--", linewidth=1.2, label=f"budget {budget:g} nats"
        )
    ax.scatter([], [], marker="o", facecolors="grey", edgecolors="grey", label="within budget")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="grey", label="over budget")
    if not dense:
        ax.scatter([], [], marker="o", s=14, color="grey", alpha=0.3, label="one seed")
    title = f"{len(settings)} settings, {doc['counts']['scored']} scored trials (median, min–max)"
    if dense:
        title += "; frontier settings drawn, all trials as density"
    if failed:
        title += f"; {failed} failed"
    ax.set(xlabel="reconstruction NLL (nats per image) ←", ylabel=f"{metric} →")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _density(fig: Any, ax: Any, points: Sequence[Mapping[str, Any]], metric: str) -> None:
    """Every trial's (recon_nll, metric) as a hexbin of counts (log colour)."""
    xy = np.array(
        [(m["recon_nll"], m[metric]) for m in points
         if is_finite(m.get(metric)) and is_finite(m.get("recon_nll"))],
        dtype=float,
    ).reshape(-1, 2)  # fmt: skip
    if len(xy):
        cells = ax.hexbin(xy[:, 0], xy[:, 1], gridsize=60, bins="log", cmap="Greys", mincnt=1,
                          linewidths=0, zorder=0)  # fmt: skip
        fig.colorbar(cells, ax=ax, label="trials per cell", pad=0.01)


def seed_spread(doc: Mapping[str, Any], path: Path) -> Path:
    """Each setting's seeds as dots on the metric axis, settings by decreasing median (the
    best ``SPREAD_ROWS`` of a larger sweep)."""
    metric = doc["sweep"]["metric"]
    settings = [s for s in doc["settings"] if s["seeds"]]
    if not settings:
        return _empty(path, "No scored trials: no seed spread to show.")
    shown_of = len(settings)
    settings = sorted(settings, key=lambda s: -s["metric"]["median"])[:SPREAD_ROWS]
    trials = {t["trial_id"]: t for t in doc["trials"]}
    height = 1.2 + 0.32 * len(settings)
    fig, ax = plt.subplots(figsize=(7.6, height), layout="constrained")
    for row, s in enumerate(settings):
        values = [
            trials[t]["metrics"][metric]
            for t in s["trial_ids"]
            if t in trials and is_finite(trials[t]["metrics"].get(metric))
        ]
        colour = "tab:blue" if s["params"].get("objective") == "beta" else "tab:orange"
        ax.plot([s["metric"]["min"], s["metric"]["max"]], [row, row], color=colour, alpha=0.5)
        ax.scatter(values, [row] * len(values), color=colour, s=18, alpha=0.6, zorder=2)
        ax.scatter(s["metric"]["median"], row, color="black", marker="|", s=160, zorder=3)
    ax.set_yticks(
        range(len(settings)),
        [f"{s['label']} ({s['seeds']} seed{'s' if s['seeds'] != 1 else ''})" for s in settings],
        fontsize=7,
    )
    ax.invert_yaxis()
    ax.plot([], [], color="tab:blue", label="β family")
    ax.plot([], [], color="tab:orange", label="capacity family")
    ax.scatter([], [], color="black", marker="|", s=160, label="median")
    title = "Seeds of each setting (dots) and their median"
    if shown_of > len(settings):
        title += f": the best {len(settings)} of {shown_of} settings"
    ax.set(xlabel=f"{metric} →", title=title)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def kl_curves(curves: dict[str, list[dict[str, Any]]], labels: dict[str, str], path: Path) -> Path:
    """Per-latent KL against step (and the capacity C) for each frontier model, side by side."""
    trials = [t for t in curves if curves[t]]
    if not trials:
        return _empty(path, "No training curves for the frontier models.")
    cols = min(3, len(trials))
    rows_n = -(-len(trials) // cols)
    fig, axes = plt.subplots(
        rows_n, cols, figsize=(4.2 * cols, 3.0 * rows_n), layout="constrained", squeeze=False
    )
    for ax, trial in zip(axes.flat, trials, strict=False):
        rows = curves[trial]
        steps = [r["step"] for r in rows]
        dims = sorted(k for k in rows[0] if k.startswith("train/kl_per_dim/"))
        for key in dims:
            ax.plot(steps, [r.get(key, np.nan) for r in rows], linewidth=1)
        capacity = [r.get("train/capacity") for r in rows]
        if any(c for c in capacity if c is not None):
            ax.plot(steps, capacity, "k--", linewidth=1, label="C")
            ax.legend(fontsize=7)
        ax.set_title(labels.get(trial, trial), fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("KL per latent (nats)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(trials) :]:
        ax.axis("off")
    return _save(fig, path)


def traversals(images: dict[str, Path | None], labels: dict[str, str], path: Path) -> Path:
    """The frontier models' latent traversals side by side (rows: latents by KL)."""
    present = {t: p for t, p in images.items() if p is not None and Path(p).is_file()}
    if not present:
        return _empty(path, "No traversal images for the frontier models.")
    fig, axes = plt.subplots(
        1, len(present), figsize=(3.2 * len(present), 3.8), layout="constrained", squeeze=False
    )
    for ax, (trial, image) in zip(axes.flat, present.items(), strict=True):
        ax.imshow(plt.imread(str(image)), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(labels.get(trial, trial), fontsize=8)
        ax.axis("off")
    return _save(fig, path)


def correlation(rows: Sequence[dict[str, Any]], keys: Sequence[str], path: Path) -> Path:
    """Spearman rank correlation between the scores (and recon_nll, kl) across trials."""
    finished = [r for r in rows if r["status"] == "FINISHED"]
    keys = [k for k in keys if sum(is_finite(r.get(k)) for r in finished) >= 3]
    if len(keys) < 2:
        return _empty(path, "Too few scored trials for a correlation matrix (needs 3).")
    matrix = np.full((len(keys), len(keys)), np.nan)
    for i, a in enumerate(keys):
        for j, b in enumerate(keys):
            pairs = [(r[a], r[b]) for r in finished if is_finite(r.get(a)) and is_finite(r.get(b))]
            if len(pairs) >= 3:
                matrix[i, j] = _spearman(*map(np.array, zip(*pairs, strict=True)))
    size = 1.2 + 0.55 * len(keys)
    fig, ax = plt.subplots(figsize=(size + 1.5, size), layout="constrained")
    image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
    short = [k.removeprefix("metric.") for k in keys]
    ax.set_xticks(range(len(keys)), short, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(keys)), short, fontsize=7)
    for i in range(len(keys)):
        for j in range(len(keys)):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="Spearman ρ")
    ax.set_title(f"Rank correlation across {len(finished)} finished trials", fontsize=9)
    return _save(fig, path)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tie = x == value
        ranks[tie] = ranks[tie].mean()
    return ranks
