"""Does UDR rank settings like the supervised scores? (issue 26, deliverable 4)

On dSprites both exist: a sweep that maximises UDR computes the preset's supervised scores
too (the cpu preset: MIG, DCI, SAP, modularity) on every trial, which gives, per setting, the
median of each over its seeds. This prints Spearman's rank correlation between UDR and MIG and
DCI over the settings (and over the single trials), with a bootstrap interval. Duan et al.
(2020) report strong rank correlations of UDR with the supervised scores on dSprites and 3D
Shapes.

    betavae-sweep --preset cpu --replicates 2 --num-samples 24 --metric udr \\
        --name udr-rank                                       # ~15 minutes on 2 cores
    .venv/bin/python bench/udr_rank.py ray_results/udr-rank/report/frontier.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

UDR = "metric.udr"
SUPERVISED = ("metric.mig", "metric.dci.disentanglement")


def per_setting(document: dict) -> dict[str, dict[str, float]]:
    """Setting id → the median over its finished seeds of UDR and each supervised score."""
    values: dict[str, dict[str, list[float]]] = {}
    for trial in document["trials"]:
        if trial["status"] != "FINISHED":
            continue
        for key in (UDR, *SUPERVISED):
            value = trial["metrics"].get(key)
            if value is not None:
                values.setdefault(trial["setting"], {}).setdefault(key, []).append(value)
    return {
        setting: {key: statistics.median(v) for key, v in scores.items()}
        for setting, scores in values.items()
        if all(key in scores for key in (UDR, *SUPERVISED))
    }


def rank_correlations(rows: list[dict[str, float]], boot: int = 2000, seed: int = 0) -> dict:
    """Spearman ρ of UDR with each supervised score over ``rows``, and a 95% bootstrap
    interval (rows resampled with replacement)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key in SUPERVISED:
        udr = np.array([r[UDR] for r in rows])
        other = np.array([r[key] for r in rows])
        rho = float(spearmanr(udr, other).statistic)
        samples = []
        for _ in range(boot):
            pick = rng.integers(0, len(rows), len(rows))
            if len(set(pick)) > 2:
                samples.append(spearmanr(udr[pick], other[pick]).statistic)
        low, high = np.nanpercentile(samples, [2.5, 97.5])
        out[key] = {"rho": rho, "low": float(low), "high": float(high), "n": len(rows)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("frontier", type=Path, help="the sweep's report/frontier.json")
    args = parser.parse_args()
    document = json.loads(args.frontier.read_text())
    settings = list(per_setting(document).values())
    trials = [
        t["metrics"]
        for t in document["trials"]
        if t["status"] == "FINISHED" and all(k in t["metrics"] for k in (UDR, *SUPERVISED))
    ]
    for what, rows in (("settings (seed medians)", settings), ("trials", trials)):
        if len(rows) < 3:
            print(f"{what}: {len(rows)} with UDR, MIG and DCI; a rank correlation needs 3")
            continue
        for key, r in rank_correlations(rows).items():
            print(f"{what}: Spearman ρ(UDR, {key}) = {r['rho']:.2f} "
                  f"[{r['low']:.2f}, {r['high']:.2f}] over {r['n']}")  # fmt: skip


if __name__ == "__main__":
    main()
