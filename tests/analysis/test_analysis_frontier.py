"""The frontier over settings: seeds aggregated by median, feasibility on every seed, and the
per-trial rule's wrong answers in constructed sweeps."""

from __future__ import annotations

import math

import pytest

from analysis.frontier import SCHEMA, EmptySweep, format_summary, frontier_document
from analysis.pareto import hypervolume

METRIC = "metric.mig"


def trial(setting, seed, *, mig=0.1, recon=100.0, status="FINISHED", beta=None, error=None):
    beta = beta if beta is not None else float(len(setting))
    row = {
        "trial_id": f"{setting}-{seed}",
        "run_id": f"run-{setting}-{seed}",
        "run_name": f"{setting}-s{seed}",
        "status": status,
        "error": error,
        "setting": setting,
        "objective": "beta",
        "beta": beta,
        "latent_dim": 10,
        "seed": seed,
        "replicate": seed,
        "steps": 1200,
    }
    if status == "FINISHED":
        row.update({"recon_nll": recon, METRIC: mig, "kl": 9.0})
    return row


def document(rows, budget=110.0):
    return frontier_document(rows, metric=METRIC, budget=budget, sweep={"name": "t"}, source="test")


def by_id(doc):
    return {s["setting"]: s for s in doc["settings"]}


def test_a_lucky_seed_does_not_win():
    """Per trial, setting A's lucky seed (0.30) is the best within budget; per setting, B's
    steady seeds (median 0.15) beat A's median (0.06)."""
    rows = [
        trial("A", 0, mig=0.30),
        trial("A", 1, mig=0.05),
        trial("A", 2, mig=0.06),
        trial("B", 0, mig=0.15),
        trial("B", 1, mig=0.14),
        trial("B", 2, mig=0.16),
    ]
    per_trial_best = max(rows, key=lambda r: r[METRIC])
    assert per_trial_best["setting"] == "A"
    doc = document(rows)
    assert doc["best_feasible"]["setting"] == "B"
    assert [s["setting"] for s in doc["frontier"]] == ["B"]  # B dominates A's median
    a = by_id(doc)["A"]
    assert a["metric"] == {"median": 0.06, "min": 0.05, "max": 0.30}
    assert a["seeds"] == 3 and a["seed_values"] == [0, 1, 2]
    assert a["median_trial_id"] == "A-2"


def test_a_setting_is_within_budget_only_when_every_seed_is():
    """C's seed 0 is within budget and the best trial; its seed 1 is not, so C is over budget
    and D (every seed within) is the best setting."""
    rows = [
        trial("C", 0, mig=0.40, recon=100.0),
        trial("C", 1, mig=0.35, recon=120.0),
        trial("D", 0, mig=0.10, recon=105.0),
        trial("D", 1, mig=0.12, recon=108.0),
    ]
    feasible_trials = [r for r in rows if r["recon_nll"] <= 110.0]
    assert max(feasible_trials, key=lambda r: r[METRIC])["setting"] == "C"
    doc = document(rows)
    assert by_id(doc)["C"]["feasible"] is False and by_id(doc)["D"]["feasible"] is True
    assert doc["best_feasible"]["setting"] == "D"
    assert doc["counts"]["feasible_trials"] == 3 and doc["counts"]["feasible_settings"] == 1
    # C's median point (0.375, 110) is on the frontier all the same: the front is not the budget.
    assert {s["setting"] for s in doc["frontier"]} == {"C", "D"}


def test_hypervolume_does_not_grow_with_replicates():
    """Per trial, a fourth, lucky seed adds area; over setting medians it adds none."""
    base = [trial("E", s, mig=0.1, recon=100.0) for s in range(3)]
    more = [*base, trial("E", 3, mig=0.5, recon=90.0)]
    per_trial = [
        hypervolume([[r[METRIC], r["recon_nll"]] for r in rs], [0.0, 110.0], [True, False])
        for rs in (base, more)
    ]
    assert per_trial[1] > per_trial[0]
    hv = [document(rs)["hypervolume"]["value"] for rs in (base, more)]
    assert hv[0] == pytest.approx(0.1 * 10.0) and hv[1] == pytest.approx(hv[0])


def test_failures_nans_and_unfinished_trials_are_counted_not_scored():
    rows = [
        trial("F", 0, mig=0.2),
        trial("F", 1, status="FAILED", error="diverged: loss is not finite"),
        trial("G", 0, status="FAILED", error="boom"),
        trial("H", 0, mig=math.nan),  # finished, but its score is NaN
        trial("H", 1, status="RUNNING"),
    ]
    doc = document(rows)
    f, g, h = (by_id(doc)[k] for k in "FGH")
    assert (f["seeds"], f["failed"], f["feasible"]) == (1, 1, True)
    assert (g["seeds"], g["failed"], g["metric"], g["feasible"]) == (0, 1, None, False)
    assert (h["seeds"], h["running"], h["median_trial_id"]) == (0, 1, None)
    assert doc["counts"] == {
        "trials": 5,
        "finished": 2,
        "scored": 1,
        "failed": 2,
        "running": 1,
        "feasible_trials": 1,
        "settings": 3,
        "scored_settings": 1,
        "feasible_settings": 1,
    }
    assert [s["setting"] for s in doc["frontier"]] == ["F"]
    assert {x["trial_id"] for x in doc["failed"]} == {"F-1", "G-0"}
    assert [s["setting"] for s in doc["settings"]][-2:] in (["G", "H"], ["H", "G"])


def test_settings_with_equal_medians_share_the_frontier():
    rows = [trial("I", 0, mig=0.2, recon=95.0), trial("J", 0, mig=0.2, recon=95.0)]
    doc = document(rows)
    assert {s["setting"] for s in doc["frontier"]} == {"I", "J"}
    assert all(s["on_frontier"] for s in doc["settings"])
    assert doc["best_feasible"]["setting"] in ("I", "J")


def test_no_budget_means_every_scored_setting_is_within_it():
    rows = [trial("K", 0, mig=0.1, recon=300.0), trial("L", 0, mig=0.2, recon=200.0)]
    doc = document(rows, budget=None)
    assert doc["best_feasible"]["setting"] == "L"
    assert doc["hypervolume"]["reference"] == {METRIC: 0.0, "recon_nll": 300.0}


def test_document_shape_and_summary():
    rows = [trial("A", s, mig=0.1 + s / 100) for s in range(3)]
    doc = document(rows)
    assert doc["schema"] == SCHEMA == "betavae.frontier/2"
    assert set(doc) == {
        "schema",
        "source",
        "sweep",
        "scoring",
        "objectives",
        "aggregation",
        "counts",
        "hypervolume",
        "best_feasible",
        "frontier",
        "settings",
        "trials",
        "failed",
    }
    assert doc["settings"][0]["trial_ids"] == ["A-0", "A-1", "A-2"]
    assert len(doc["trials"]) == 3 and doc["trials"][0]["feasible"] is True
    text = format_summary(doc)
    assert "Best within budget: β=1, z=10 — metric.mig median 0.11 [0.1–0.12]" in text
    assert "frontier over settings" in text


def test_a_sweep_without_trials_is_an_error():
    with pytest.raises(EmptySweep, match="has no trials yet"):
        document([])
