"""The search-efficiency replay (bench/search_efficiency.py): it scores a searcher by the
sweep's own pick, snaps suggestions on the space's own scales, runs the grid in
disentanglement_lib's order, repeats itself exactly, and replays the sweep's searcher as the
sweep builds it (the plan a sweep's Optuna study records)."""

from __future__ import annotations

import importlib.util
import itertools
import random
import sys
from pathlib import Path

import pytest

from analysis.frontier import frontier_document
from sweeps.config import parse_settings
from sweeps.search.plan import build_searcher, search_plan

ROOT = Path(__file__).resolve().parents[2]


def bench():
    if "search_efficiency" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "search_efficiency", ROOT / "bench" / "search_efficiency.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["search_efficiency"] = module
        spec.loader.exec_module(module)
    return sys.modules["search_efficiency"]


def landscape_rows(best=(4.0, 10), unreachable=16.0):
    """A small landscape over the cpu preset's space: one β setting clearly best within the
    budget (130 nats); a better-scoring β beyond the budget; everything else mediocre."""
    rows = []
    for seed, z in itertools.product((0, 1), (5, 10)):
        for beta in (1.0, 4.0, unreachable):
            mig, recon = 0.1 + 0.01 * seed, 110.0
            if (beta, z) == best:
                mig = 0.5 + 0.01 * seed
            if beta == unreachable:
                mig, recon = 0.9, 200.0
            rows.append({"objective": "beta", "beta": beta, "latent_dim": z, "seed": seed,
                         "recon_nll": recon, "metric.mig": mig})  # fmt: skip
        for c, a, g in itertools.product((5.0, 50.0), (0.25, 1.0), (20.0, 200.0)):
            rows.append({"objective": "capacity", "capacity_max": c, "anneal_fraction": a,
                         "gamma": g, "latent_dim": z, "seed": seed, "recon_nll": 120.0,
                         "metric.mig": 0.05 + 0.001 * c})  # fmt: skip
    return rows


def cpu():
    return parse_settings(["--preset", "cpu"])


def test_the_target_is_the_best_setting_within_budget_not_the_best_score():
    land = bench().Landscape.load(landscape_rows(), cpu(), tolerance=0.01)
    assert land.best == pytest.approx(0.505)  # the median of β = 4, z = 10's two seeds
    assert [bench().params_of(p) for p in land.targets] == [
        {"objective": "beta", "beta": 4.0, "latent_dim": 10}
    ]
    unreachable = next(p for p in land.seeds if p[1] == 16.0)
    assert land.regret(unreachable) == land.best  # over budget: nothing usable found


def test_suggestions_snap_on_the_scales_the_space_samples():
    land = bench().Landscape.load(landscape_rows(), cpu(), tolerance=0.01)

    def snapped(**config):
        return bench().params_of(land.snap(config))

    # β and γ are log-uniform: β = 2.1 is nearer 4 than 1 on a log scale (on a linear one,
    # nearer 1); γ = 70 is nearer 200 than 20 (linear: nearer 20). C_max, the anneal fraction
    # and the latent size are linear: C_max 30 is nearer 50 than 5, z = 7 nearer 5 than 10.
    assert snapped(objective="beta", beta=2.1, latent_dim=7) == {
        "objective": "beta", "beta": 4.0, "latent_dim": 5,
    }  # fmt: skip
    assert snapped(objective="beta", beta=1.9, latent_dim=8)["beta"] == 1.0
    assert snapped(
        objective="capacity", capacity_max=30.0, anneal_fraction=0.9, gamma=70.0, latent_dim=8
    ) == {
        "objective": "capacity", "capacity_max": 50.0, "anneal_fraction": 1.0,
        "gamma": 200.0, "latent_dim": 10,
    }  # fmt: skip
    assert (
        snapped(
            objective="capacity", capacity_max=30.0, anneal_fraction=0.9, gamma=60.0, latent_dim=8
        )["gamma"]
        == 20.0
    )


def test_the_pick_is_the_reports_best_within_budget():
    """Seed by seed, the replay's pick is the setting ``analysis.frontier`` calls best within
    budget (every seed within budget; highest median metric)."""
    mod = bench()
    generator = random.Random(3)
    points = [("beta", b, None, None, None, z) for b in (1.0, 2.0, 4.0) for z in (5, 10)]
    pick = mod.Pick("metric.mig", 130.0)
    rows = []
    for n in range(40):
        point = generator.choice(points)
        row = {"metric.mig": generator.random(), "recon_nll": generator.uniform(100, 150)}
        if n % 13 == 5:
            row = {"error": "diverged: loss is nan"}
        pick.add(point, row)
        status = "FAILED" if "error" in row else "FINISHED"
        rows.append(
            {**mod.params_of(point), **row, "setting": repr(point), "trial_id": str(n),
             "status": status}
        )  # fmt: skip
        doc = frontier_document(rows, metric="metric.mig", budget=130.0, sweep={}, source="t")
        best = doc["best_feasible"]
        assert (repr(pick.best) if pick.best else None) == (best["setting"] if best else None)


def test_the_grid_runs_in_disentanglement_libs_order():
    land = bench().Landscape.load(landscape_rows(), cpu(), tolerance=0.01)
    order = bench().grid_order(land)
    assert len(order) == 44 and order[0] == order[1]  # a point's seeds one after the other
    betas = [p for p in order if p[0] == "beta"]
    assert order[: len(betas)] == betas  # the β family first, ascending in β per latent size
    assert [p[1] for p in betas[::2]] == [1.0, 4.0, 16.0] * 2
    assert [p[5] for p in betas[::2]] == [5, 5, 5, 10, 10, 10]


def test_replays_repeat_exactly_and_find_an_obvious_best():
    rows = landscape_rows()
    runs = [
        bench().run(
            rows,
            reps=3,
            tolerance=0.01,
            workers=1,
            only=("grid", "random", "sweep", "tpe"),
            progress=lambda _: None,
        )
        for _ in range(2)
    ]
    assert runs[0]["outcomes"] == runs[1]["outcomes"]
    # Random sampling with one seed is the sweep's own plan: replayed once, as the sweep.
    assert list(runs[0]["searchers"]) == ["grid", "sweep", "tpe"]
    table = {row["searcher"]: row for row in runs[0]["table"]}
    assert table["grid"]["median"] == 9  # β = 4, z = 10 is the 5th point: its first seed
    assert all(o["found"] is not None for o in runs[0]["outcomes"])
    assert (
        runs[0]["plans"]["sweep"]
        == search_plan(parse_settings(["--preset", "cpu", "--num-samples", "44"])).to_dict()
    )
    # The preset's own 12-trial sweep, replayed separately with the plan it builds.
    assert runs[0]["preset_plans"]["sweep"] == search_plan(cpu()).to_dict()
    short = runs[0]["preset_outcomes"]
    assert len(short) == 9 and all(o["found"] is None or o["found"] <= 12 for o in short)
    assert {o["found"] for o in short if o["searcher"] == "grid"} == {9}
    assert table["grid"]["found_within_preset"] == 1.0
    markdown = bench().markdown_table(runs[0]).splitlines()
    assert len(markdown) == 2 + 3 and markdown[2].startswith("| grid: ")
    assert markdown[2].endswith("| 9 [9–9] | 1.00 | 100% | 100% | 0.000 | 0.000 |")
    assert table["grid"]["regret_preset"] == 0.0  # found at trial 9 of 12


def test_the_sweeps_study_records_how_it_searches(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    settings = parse_settings(["--preset", "cpu", "--storage-path", str(tmp_path)])
    journal_path = tmp_path / settings.name / "optuna.journal"
    searcher = build_searcher(settings, journal_path)
    searcher.suggest("first")
    journal = JournalFileBackend(str(journal_path))
    study = optuna.load_study(study_name=settings.name, storage=JournalStorage(journal))
    plan = study.user_attrs["search_plan"]
    assert plan == search_plan(settings).to_dict()
    # The replay's best: random sampling, one seed per setting, no starting points.
    assert plan["sampler"] == "random" and plan["replicates"] == settings.replicates == 1
    assert plan["initial_points"] == [] and plan["reseed"] == "always"
    assert isinstance(searcher.study.sampler, optuna.samplers.RandomSampler)
    # The paper preset keeps the papers' own settings as starting points, three seeds each.
    paper = parse_settings(["--preset", "paper", "--storage-path", str(tmp_path / "paper")])
    plan = search_plan(paper).to_dict()
    assert plan["sampler"] == "random" and plan["replicates"] == 3
    assert [p["objective"] for p in plan["initial_points"]] == ["beta", "beta", "capacity"]


def test_seed_noise_is_split_from_the_settings_effect():
    """Two landscapes with the same settings: in one the score is the setting's (seeds agree),
    in the other the seed's (each point's two seeds straddle one common mean)."""
    settings = cpu()

    def rows(score):
        return [
            {"objective": "beta", "beta": beta, "latent_dim": 5, "seed": seed,
             "recon_nll": 100.0, "metric.mig": score(beta, seed)}
            for beta in (1.0, 2.0, 4.0, 8.0) for seed in (0, 1)
        ]  # fmt: skip

    by_setting = bench().Landscape.load(rows(lambda b, s: 0.1 * b), settings, tolerance=0.01)
    spread = bench().seed_spread(by_setting, "metric.mig")["all"]
    assert spread["points"] == 4 and spread["seed_sd"] == 0.0
    assert spread["setting_share"] == 1.0 and spread["setting_sd"] > 0.25

    by_seed = bench().Landscape.load(
        rows(lambda b, s: 0.3 + (0.1 if s else -0.1) * (1 if b < 3 else -1)), settings, 0.01
    )
    spread = bench().seed_spread(by_seed, "metric.mig")["all"]
    assert spread["setting_sd"] == 0.0 and spread["setting_share"] == 0.0
    assert spread["seed_sd"] == pytest.approx(0.1 * 2**0.5)
    assert spread["paired"]["setting_share"] == 0.0  # the seeds' luck differs by setting

    # Seed 1 better than seed 0 by 0.2 at every setting: luck shared by all settings. Seen
    # as noise it hides the settings' order; compared at equal seeds, the order is all there.
    offset = bench().Landscape.load(rows(lambda b, s: 0.01 * b + 0.2 * s), settings, tolerance=0.01)
    spread = bench().seed_spread(offset, "metric.mig")["all"]
    assert spread["setting_share"] < 0.1 and spread["seed_sd"] == pytest.approx(0.2 / 2**0.5)
    paired = spread["paired"]
    assert paired["seeds"] == [0, 1] and paired["seed_offsets"] == pytest.approx([-0.1, 0.1])
    assert paired["residual_sd"] == pytest.approx(0.0, abs=1e-9)
    assert paired["setting_share"] == pytest.approx(1.0)

    one_seed = [r for r in rows(lambda b, s: b) if r["seed"] == 0]
    landscape = bench().Landscape.load(one_seed, settings, 0.01)
    assert bench().seed_spread(landscape, "metric.mig") is None  # nothing to split
