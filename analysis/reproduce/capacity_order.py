"""Burgess et al. (2017), fig. 2: as the capacity C grows, latents switch on one at a time,
in the order of how much reconstruction each buys — position, then scale, then shape and
orientation.

Each latent is named by the factor it carries most information about at the end of training
(read through the posterior noise, on 10,000 held-out images); it *switches on* at the first
step after which its KL stays above 0.5 nats. The verdict:

- ``reproduced``: reconstruction ends below half the ignore-the-input level, posX and posY
  are both carried, and the latents switch on in the order position → scale →
  shape/orientation with at least one latent of each;
- ``partly reproduced``: the same, but shape and orientation never switch on;
- ``not reproduced``: anything else (the report says what happened).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.reproduce.training import history
from betavae.metrics.latents import SWITCH_ON_NATS

#: Burgess et al.'s order: a lower stage switches on first.
STAGE = {"posX": 0, "posY": 0, "scale": 1, "shape": 2, "orientation": 2}
STAGE_NAMES = ("position", "scale", "shape/orientation")
COLOURS = {
    "posX": "tab:blue",
    "posY": "tab:cyan",
    "scale": "tab:green",
    "shape": "tab:red",
    "orientation": "tab:purple",
}


@dataclass(frozen=True)
class Latent:
    latent: int
    factor: str
    information: float
    kl: float
    on_step: int | None
    on_capacity: float | None


def switch_on(steps: Sequence[int], kl: Sequence[float], threshold: float = SWITCH_ON_NATS):
    """The first index after which ``kl`` stays above ``threshold`` (None if it ends below)."""
    above = np.asarray(kl) > threshold
    if not above[-1]:
        return None
    below = np.flatnonzero(~above)
    return int(below[-1] + 1) if len(below) else 0


def latents(run: dict[str, Any], rows: list[dict[str, Any]]) -> list[Latent]:
    """The switched-on latents of a run, in switch-on order."""
    steps = [r["step"] for r in rows]
    kl = np.array([r["kl_per_dim"] for r in rows])
    info = np.asarray(run["information"])
    names = run["factor_names"]
    out = []
    for j in range(kl.shape[1]):
        index = switch_on(steps, kl[:, j])
        if index is None:
            continue
        f = int(np.argmax(info[j]))
        out.append(
            Latent(
                latent=j,
                factor=names[f],
                information=float(info[j, f]),
                kl=float(run["kl_per_dim"][j]),
                on_step=int(steps[index]),
                on_capacity=float(rows[index]["capacity"]),
            )
        )
    return sorted(out, key=lambda x: (x.on_step, -x.kl))


def verdict(found: list[Latent], recon_nll: float, ignore_input: float) -> tuple[str, str]:
    """``(verdict, why)`` for one run (module docstring)."""
    factors = [x.factor for x in found]
    stages = [STAGE.get(f, 3) for f in factors]
    ordered = all(a <= b for a, b in itertools.pairwise(stages))
    order = " → ".join(f"{x.factor} (C={x.on_capacity:.3g})" for x in found) or "none"
    why = f"switch-on order {order}; recon_nll {recon_nll:.1f} nats"
    learned = recon_nll < 0.5 * ignore_input
    positions = {"posX", "posY"} <= set(factors)
    if not learned:
        return "not reproduced", f"{why}, not below half the ignore-the-input level"
    if not (positions and ordered and 1 in stages):
        return "not reproduced", why
    if 2 not in stages:
        return "partly reproduced", f"{why}; shape and orientation never switched on"
    return "reproduced", why


def figure(run: dict[str, Any], rows: list[dict[str, Any]], found: list[Latent], path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = {x.latent: x for x in found}
    capacity = [r["capacity"] for r in rows]
    kl = np.array([r["kl_per_dim"] for r in rows])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for j in range(kl.shape[1]):
        x = labelled.get(j)
        label = f"z{j}: {x.factor} ({x.information:.2f})" if x else None
        colour = COLOURS.get(x.factor, "black") if x else "lightgrey"
        left.plot(capacity, kl[:, j], color=colour, linewidth=1.6 if x else 0.8, label=label)
    left.set(xlabel="capacity C (nats)", ylabel="KL per latent (nats)")
    left.set_title("Per-latent KL as C grows (label: factor, its information)", fontsize=9)
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.plot([r["step"] for r in rows], [r["recon_nll"] for r in rows], color="black")
    right.set(xlabel="step", ylabel="reconstruction NLL (nats per image)")
    right.set_title("Reconstruction", fontsize=9)
    right.grid(alpha=0.3)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def analyse(runs: dict[str, dict[str, Any]], folder: Path, ignore_input: float) -> dict:
    """Per run: the switched-on latents, the verdict, the figure; and an overall verdict (the
    most common one; ties go to the weaker)."""
    results = {}
    for name, run in runs.items():
        rows = history(folder / "runs" / name)
        found = latents(run, rows)
        outcome, why = verdict(found, run["recon_nll"], ignore_input)
        figure(run, rows, found, folder / f"{name}.png")
        results[name] = {
            "verdict": outcome,
            "why": why,
            "recon_nll": run["recon_nll"],
            "kl": run["kl"],
            "latents": [x.__dict__ for x in found],
            "figure": f"{name}.png",
            "partial_step": run.get("partial_step"),  # unfinished: read at its last probe
        }
    ranks = ["not reproduced", "partly reproduced", "reproduced"]
    counts = [sum(r["verdict"] == v for r in results.values()) for v in ranks]
    overall = ranks[int(np.argmax(counts))]
    return {"verdict": overall, "runs": results}


def markdown(result: dict[str, Any], protocol: dict[str, Any]) -> str:
    lines = [
        "# Capacity order (Burgess et al. 2017)",
        "",
        f"**Verdict: {result['verdict']}.** Protocol: {protocol['summary']}.",
        "",
        "Each latent is named by the factor it carries most information about (normalised MI "
        "of posterior samples with the factor, 10,000 held-out images); it switches on at the "
        f"first step after which its KL stays above {SWITCH_ON_NATS} nats.",
        "",
    ]
    for name, run in result["runs"].items():
        unfinished = run.get("partial_step")
        note = (
            [f"*Unfinished: read at its last probe, step {unfinished:,} (recon_nll and KL "
             "of that step's training batch).*", ""]
            if unfinished else []
        )  # fmt: skip
        lines += [
            f"## {name}: {run['verdict']}",
            "",
            *note,
            f"{run['why']}.",
            "",
            "| latent | factor | information | switched on at step | C then (nats) | final KL |",
            "|---|---|---|---|---|---|",
        ]
        for x in run["latents"]:
            lines.append(
                f"| z{x['latent']} | {x['factor']} | {x['information']:.2f} | {x['on_step']:,} "
                f"| {x['on_capacity']:.2f} | {x['kl']:.2f} |"
            )
        lines += ["", f"![{name}]({run['figure']})", ""]
    return "\n".join(lines)
