"""The reproduction reports' reading of runs: switch-on order, labels and verdicts, from
synthetic histories (the training itself is ``betavae``'s, tested elsewhere)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.reproduce import beta_ladder, capacity_order
from analysis.reproduce.__main__ import build_parser, protocol_from

FACTORS = ["shape", "scale", "orientation", "posX", "posY"]


def capacity_run(tmp_path, on_at: dict[int, tuple[int, str]], recon=120.0, name="seed0"):
    """A run whose latent j switches on at step ``on_at[j][0]`` carrying ``on_at[j][1]``."""
    steps = list(range(250, 10_001, 250))
    rows = []
    for step in steps:
        kl = [0.02] * 6
        for j, (start, _) in on_at.items():
            kl[j] = 0.0 if step < start else 0.8 + (step - start) / 1000
        rows.append(
            {"step": step, "capacity": 25 * step / 10_000, "recon_nll": 300.0, "kl_per_dim": kl}
        )
    info = np.full((6, 5), 0.01)
    for j, (_, factor) in on_at.items():
        info[j, FACTORS.index(factor)] = 0.4
    folder = tmp_path / "runs" / name
    folder.mkdir(parents=True)
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = {
        "recon_nll": recon,
        "kl": float(sum(rows[-1]["kl_per_dim"])),
        "kl_per_dim": rows[-1]["kl_per_dim"],
        "information": info.tolist(),
        "factor_names": FACTORS,
    }
    return {name: run}


def test_switch_on_is_the_start_of_the_last_stretch_above_the_threshold():
    assert capacity_order.switch_on([1, 2, 3, 4, 5], [0.0, 0.9, 0.1, 0.7, 0.8]) == 3
    assert capacity_order.switch_on([1, 2, 3], [0.6, 0.7, 0.9]) == 0
    assert capacity_order.switch_on([1, 2, 3], [0.6, 0.7, 0.1]) is None


def test_burgess_order_is_reproduced(tmp_path):
    runs = capacity_run(
        tmp_path,
        {0: (1000, "posX"), 3: (1250, "posY"), 1: (4000, "scale"), 5: (7000, "shape")},
    )
    result = capacity_order.analyse(runs, tmp_path, ignore_input=565.0)
    run = result["runs"]["seed0"]
    assert result["verdict"] == run["verdict"] == "reproduced"
    assert [x["factor"] for x in run["latents"]] == ["posX", "posY", "scale", "shape"]
    assert run["latents"][2]["on_capacity"] == pytest.approx(10.0)
    assert (tmp_path / "seed0.png").is_file()
    text = capacity_order.markdown(result, {"summary": "synthetic"})
    assert "**Verdict: reproduced.**" in text and "| z1 | scale | 0.40 | 4,000 | 10.00 |" in text


@pytest.mark.parametrize(
    ("on_at", "recon", "expected"),
    [
        ({0: (1000, "posX"), 3: (1250, "posY"), 1: (4000, "scale")}, 120.0, "partly reproduced"),
        ({0: (1000, "posX"), 3: (1250, "posY")}, 180.0, "not reproduced"),  # no scale
        ({0: (1000, "scale"), 3: (1250, "posY"), 1: (4000, "posX")}, 120.0, "not reproduced"),
        ({0: (1000, "posX"), 3: (1250, "posY"), 1: (4000, "scale")}, 400.0, "not reproduced"),
    ],
    ids=["no-shape", "positions-only", "out-of-order", "did-not-learn"],
)
def test_weaker_outcomes_are_named(tmp_path, on_at, recon, expected):
    result = capacity_order.analyse(capacity_run(tmp_path, on_at, recon), tmp_path, 565.0)
    assert result["verdict"] == expected


def ladder_runs(recons, scores):
    runs = {}
    for beta, recon_seeds, score_seeds in zip((1.0, 4.0, 16.0), recons, scores, strict=True):
        for seed, (recon, score) in enumerate(zip(recon_seeds, score_seeds, strict=True)):
            runs[f"beta{beta:g}-seed{seed}"] = {
                "config": {"beta": beta, "seed": seed},
                "recon_nll": recon,
                "scores": {"metric.mig": score, "metric.dci.disentanglement": score / 2,
                           "active_latents": 10 - beta / 2},
            }  # fmt: skip
    return runs


def test_beta_ladder_reads_seed_medians(tmp_path):
    runs = ladder_runs(
        [(60, 62, 90), (80, 81, 85), (150, 140, 160)],
        [(0.30, 0.05, 0.04), (0.10, 0.12, 0.11), (0.20, 0.22, 0.18)],  # a lucky β=1 seed
    )
    result = beta_ladder.analyse(runs, tmp_path, "metric.mig")
    assert result["verdict"] == "reproduced"
    first = result["ladder"][0]
    assert first["recon_nll"] == {"median": 62.0, "min": 60, "max": 90}
    assert first["metrics"]["metric.mig"]["median"] == pytest.approx(0.05)
    assert (tmp_path / "beta_ladder.png").is_file()
    text = beta_ladder.markdown(result, {"summary": "synthetic"})
    assert "| 1 | 3 | 62 [60–90] |" in text


def test_beta_ladder_weaker_outcomes(tmp_path):
    up_then_down = ladder_runs([(60,), (80,), (150,)], [(0.05,), (0.20,), (0.10,)])
    assert beta_ladder.analyse(up_then_down, tmp_path, "metric.mig")["verdict"] == (
        "partly reproduced"
    )
    flat = ladder_runs([(60,), (80,), (150,)], [(0.20,), (0.10,), (0.05,)])
    assert beta_ladder.analyse(flat, tmp_path, "metric.mig")["verdict"] == "not reproduced"


def test_a_single_beta_is_reported_but_not_judged(tmp_path):
    runs = ladder_runs([(60,), (80,), (150,)], [(0.05,), (0.10,), (0.20,)])
    one_beta = {name: run for name, run in runs.items() if name.startswith("beta16")}
    result = beta_ladder.analyse(one_beta, tmp_path, "metric.mig")
    assert result["verdict"] == "not judged"
    assert "one β only" in result["why"] and "β=16: recon 150.0" in result["why"]
    assert "| 16 | 1 | 150 |" in beta_ladder.markdown(result, {"summary": "synthetic"})


def test_protocol_flags_apply_to_their_own_effect():
    args = build_parser().parse_args(["capacity-order", "--out", "x", "--gamma", "1000"])
    assert protocol_from(args).gamma == 1000.0 and protocol_from(args).steps == 20_000
    args = build_parser().parse_args(["beta-ladder", "--out", "x", "--gamma", "1000"])
    with pytest.raises(SystemExit, match="--gamma is not for beta-ladder"):
        protocol_from(args)
