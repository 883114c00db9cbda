"""The table per searcher (trials to best, found within the preset's budget and within
CURVE_LENGTH trials, the pick's mean regret), as text, as Markdown, and as a plot."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CURVE_LENGTH = 64  # trials drawn in the regret plot (the paper preset's num_samples)


def quartiles(values: Iterable[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(list(values), [25, 50, 75])
    return float(q1), float(q2), float(q3)


def summarise(
    outcomes: Sequence[dict[str, Any]],
    names: Sequence[str],
    horizon: int,
    preset_outcomes: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Per searcher: the trials needed over the whole table; the share found by the replays
    of the preset's own sweep (``preset_outcomes``) and their pick's mean regret at its end;
    the share found and the mean regret at trial ``CURVE_LENGTH`` of the long replays."""
    table = []
    for name in names:
        runs = [o for o in outcomes if o["searcher"] == name]
        short = [o for o in preset_outcomes if o["searcher"] == name]
        needed = [o["found"] if o["found"] is not None else horizon + 1 for o in runs]
        q1, q2, q3 = quartiles(needed)
        table.append(
            {
                "searcher": name,
                "reps": len(runs),
                "median": q2,
                "q1": q1,
                "q3": q3,
                "not_found": sum(o["found"] is None for o in runs),
                "found_within_preset": sum(o["found"] is not None for o in short) / len(short),
                f"found_within_{CURVE_LENGTH}": sum(n <= CURVE_LENGTH for n in needed) / len(runs),
                "regret_preset": float(np.mean([o["regret"][-1] for o in short])),
                f"regret_{CURVE_LENGTH}": float(
                    np.mean([o["regret"][min(CURVE_LENGTH, len(o["regret"])) - 1] for o in runs])
                ),
            }
        )
    grid = next(t for t in table if t["searcher"] == "grid")
    for row in table:
        row["ratio_to_grid"] = row["median"] / grid["median"]
    return table


def print_table(table: Sequence[dict[str, Any]], horizon: int, within: int, out=sys.stdout):
    print(
        f"{'searcher':<19} {'trials to best: median [IQR]':>29} {'ratio':>6} "
        f"{'not found':>9} {f'found ≤ {within}':>11} {f'regret @{within}':>10} "
        f"{f'found ≤ {CURVE_LENGTH}':>11} {f'regret @{CURVE_LENGTH}':>10}",
        file=out,
    )
    for t in table:
        spread = f"{t['median']:.0f} [{t['q1']:.0f}–{t['q3']:.0f}]"
        print(
            f"{t['searcher']:<19} {spread:>29} {t['ratio_to_grid']:>6.2f} "
            f"{t['not_found']:>4}/{t['reps']:<4} {t['found_within_preset']:>10.0%} "
            f"{t['regret_preset']:>10.3f} {t[f'found_within_{CURVE_LENGTH}']:>11.0%} "
            f"{t[f'regret_{CURVE_LENGTH}']:>10.3f}",
            file=out,
        )
    print(f"(not found within {horizon} trials counts as {horizon + 1})", file=out)


def markdown_table(result: dict[str, Any]) -> str:
    """The table as Markdown, for the README and docs/SWEEPS.md."""
    horizon, within = result["horizon"], result["preset_trials"]
    lines = [
        f"| searcher | trials to best: median [IQR] | ratio to grid | found within {within} "
        f"trials | within {CURVE_LENGTH} | mean regret at {within} | at {CURVE_LENGTH} |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for t in result["table"]:

        def count(x: float) -> str:
            return f">{horizon}" if x > horizon else f"{x:.0f}"

        lines.append(
            f"| {t['searcher']}: {result['searchers'][t['searcher']]} | {count(t['median'])} "
            f"[{count(t['q1'])}–{count(t['q3'])}] | {t['ratio_to_grid']:.2f} | "
            f"{t['found_within_preset']:.0%} | {t[f'found_within_{CURVE_LENGTH}']:.0%} | "
            f"{t['regret_preset']:.3f} | {t[f'regret_{CURVE_LENGTH}']:.3f} |"
        )
    return "\n".join(lines)


def plot(outcomes: Sequence[dict[str, Any]], names: Sequence[str], path: Path, best: float):
    """Left: the mean regret of each searcher's pick; right: the share of replays whose pick
    is a target by each trial."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    length = min(len(o["regret"]) for o in outcomes)
    x = np.arange(1, length + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        runs = [o for o in outcomes if o["searcher"] == name]
        regret = np.array([o["regret"][:length] for o in runs]).mean(axis=0)
        found = np.array([[o["found"] is not None and o["found"] <= t for t in x] for o in runs])
        width = 2.0 if name in ("sweep", "grid") else 1.0
        (line,) = left.plot(x, regret, label=name, lw=width)
        right.plot(x, found.mean(axis=0), color=line.get_color(), lw=width)
    left.set(xlabel="trials", ylabel="mean regret (best median − pick's median)")
    left.set_ylim(0, best * 1.05)
    left.set_title("Regret of the sweep's pick")
    left.legend(fontsize=8)
    right.set(xlabel="trials", ylabel="share of replays", ylim=(0, 1.02))
    right.set_title("Pick within tolerance of the best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
