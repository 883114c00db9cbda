"""The report's figures, rendered headless with matplotlib (Agg). Each returns its PNG path.

Conventions: x = reconstruction NLL (nats, lower is better), y = the disentanglement metric
(higher is better); β-family trials are circles coloured by log β, capacity-family trials
squares coloured by C_max; filled = within the reconstruction budget, hollow = over it;
failed trials are listed, not plotted (they have no scores).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import LogNorm, Normalize

from analysis.runs import is_finite, scored_trials
from sweeps.space import describe

DPI = 110


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _empty(path: Path, message: str, size: tuple[float, float] = (6.4, 4.0)) -> Path:
    fig, ax = plt.subplots(figsize=size, layout="constrained")
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, wrap=True)
    return _save(fig, path)


def frontier(
    rows: Sequence[dict[str, Any]],
    front_ids: set[str],
    path: Path,
    *,
    metric: str,
    budget: float | None,
    failed: int = 0,
) -> Path:
    """Reconstruction vs metric for every scored trial, the frontier line and the budget."""
    scored = scored_trials(rows, metric)
    if not scored:
        return _empty(path, f"No finished trial has {metric} and recon_nll ({failed} failed).")
    fig, ax = plt.subplots(figsize=(7.2, 4.8), layout="constrained")
    families = {
        "beta": ("o", "viridis", "beta", LogNorm, "β"),
        "capacity": ("s", "plasma", "capacity_max", Normalize, "C_max (nats)"),
    }
    for family, (marker, cmap, key, norm_cls, label) in families.items():
        group = [r for r in scored if r["objective"] == family]
        if not group:
            continue
        values = np.array([r[key] for r in group], dtype=float)
        low, high = float(values.min()), float(values.max())
        if norm_cls is LogNorm:
            low = max(low, 1e-3)
        norm = norm_cls(vmin=low, vmax=high if high > low else low * 1.01 + 1e-9)
        colours = plt.get_cmap(cmap)(norm(values))
        for r, colour in zip(group, colours, strict=True):
            feasible = bool(r.get("feasible"))
            ax.scatter(
                r["recon_nll"],
                r[metric],
                marker=marker,
                s=46,
                linewidths=1.4,
                facecolors=colour if feasible else "none",
                edgecolors=colour,
                zorder=3,
            )
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mappable, ax=ax, label=f"{family} family: {label}", pad=0.01)
    front = sorted((r for r in scored if r["trial_id"] in front_ids), key=lambda r: r["recon_nll"])
    if front:
        xs = [r["recon_nll"] for r in front]
        ys = [r[metric] for r in front]
        ax.step(
            xs, ys, where="post", color="black", linewidth=1.2, label="Pareto frontier", zorder=2
        )
    if budget is not None:
        ax.axvline(
            budget, color="crimson", linestyle="--", linewidth=1.2, label=f"budget {budget:g} nats"
        )
    ax.scatter([], [], marker="o", facecolors="grey", edgecolors="grey", label="within budget")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="grey", label="over budget")
    title = f"{len(scored)} scored trials"
    if failed:
        title += f", {failed} failed (not plotted)"
    ax.set(xlabel="reconstruction NLL (nats per image) ←", ylabel=f"{metric} →", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def seed_spread(rows: Sequence[dict[str, Any]], path: Path, *, metric: str) -> Path:
    """Each setting's mean over its seeds, with bars from the lowest to the highest seed."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in scored_trials(rows, metric):
        groups[r["setting"]].append(r)
    if not groups:
        return _empty(path, "No scored trials: no seed spread to show.")
    fig, ax = plt.subplots(figsize=(7.2, 4.6), layout="constrained")
    for members in groups.values():
        x = np.array([r["recon_nll"] for r in members])
        y = np.array([r[metric] for r in members])
        first = members[0]
        colour = "tab:blue" if first["objective"] == "beta" else "tab:orange"
        ax.errorbar(
            x.mean(),
            y.mean(),
            xerr=[[x.mean() - x.min()], [x.max() - x.mean()]],
            yerr=[[y.mean() - y.min()], [y.max() - y.mean()]],
            fmt="o",
            color=colour,
            capsize=3,
            markersize=5,
        )
        ax.annotate(
            f"{describe(first, seed=False)} ({len(members)} seeds)",
            (x.mean(), y.mean()),
            fontsize=7,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.errorbar([], [], fmt="o", color="tab:blue", label="β family")
    ax.errorbar([], [], fmt="o", color="tab:orange", label="capacity family")
    ax.set(
        xlabel="reconstruction NLL (nats per image) ←",
        ylabel=f"{metric} →",
        title="Spread over seeds: mean, bars from min to max",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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
        ax.imshow(plt.imread(str(image)), cmap="gray")
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
