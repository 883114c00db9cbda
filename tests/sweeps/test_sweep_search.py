"""The search: define-by-run space, seed replicates, and the reconstruction constraint."""

from __future__ import annotations

import math

import optuna
import pytest

from sweeps.search.searcher import CONSTRAINT, ConstrainedOptunaSearch
from sweeps.search.space import (
    ANNEAL_FRACTION_RANGE,
    BETA_RANGE,
    CAPACITY_MAX_RANGE,
    GAMMA_RANGE,
    SearchSpace,
)
from sweeps.trial.config import TrialConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)


def searcher(replicates: int = 1, pareto: bool = False, budget: float = 100.0, **kw):
    return ConstrainedOptunaSearch(
        space=SearchSpace(steps=1000, latent_dim_range=(4, 32), seed=7),
        metric=["metric.mig", "recon_nll"] if pareto else "metric.mig",
        mode=["max", "min"] if pareto else "max",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4),
        recon_budget=budget,
        replicates=replicates,
        **kw,
    )


def test_space_is_conditional_and_within_bounds():
    s = searcher()
    configs = [s.suggest(f"t{i}") for i in range(60)]
    families = {c["objective"] for c in configs}
    assert families == {"beta", "capacity"}
    for c in configs:
        assert 4 <= c["latent_dim"] <= 32
        if c["objective"] == "beta":
            assert BETA_RANGE[0] <= c["beta"] <= BETA_RANGE[1]
            assert not {"gamma", "capacity_max", "anneal_fraction"} & set(c)
        else:
            assert CAPACITY_MAX_RANGE[0] <= c["capacity_max"] <= CAPACITY_MAX_RANGE[1]
            assert ANNEAL_FRACTION_RANGE[0] <= c["anneal_fraction"] <= ANNEAL_FRACTION_RANGE[1]
            assert GAMMA_RANGE[0] <= c["gamma"] <= GAMMA_RANGE[1]
            assert "beta" not in c
    betas = [c["beta"] for c in configs if c["objective"] == "beta"]
    # log-uniform: about half the mass below the geometric midpoint sqrt(32) ≈ 5.7
    assert 0.2 < sum(b < math.sqrt(32) for b in betas) / len(betas) < 0.8


def test_the_trials_the_searcher_created_are_known_to_this_driver(monkeypatch):
    """The MLflow writer creates their runs without searching for one (``live.created_here``);
    a trial id the searcher never saw (restored from an earlier driver) is not among them."""
    from sweeps.config import live

    monkeypatch.setattr(live.LIVE, "created", set())
    s = searcher()
    s.suggest("fresh")
    assert live.created_here("fresh") and not live.created_here("restored")


def test_replicates_repeat_a_setting_with_consecutive_seeds():
    s = searcher(replicates=3)
    configs = [s.suggest(f"t{i}") for i in range(6)]
    key = ("objective", "beta", "capacity_max", "gamma", "anneal_fraction", "latent_dim")
    first, second = configs[:3], configs[3:]
    for group in (first, second):
        assert len({tuple(c.get(k) for k in key) for c in group}) == 1
        assert [c["replicate"] for c in group] == [0, 1, 2]
        assert [c["seed"] for c in group] == [7, 8, 9]
    assert tuple(first[0].get(k) for k in key) != tuple(second[0].get(k) for k in key)


def test_no_replicate_is_queued_beyond_the_sweeps_trials():
    # 5 trials at 2 seeds: the third setting runs with one seed, and nothing stays WAITING.
    s = searcher(replicates=2, max_trials=5)
    configs = [s.suggest(f"t{i}") for i in range(5)]
    assert [c["replicate"] for c in configs] == [0, 1, 0, 1, 0]
    states = [t.state for t in s.study.trials]
    assert states == [optuna.trial.TrialState.RUNNING] * 5


def test_near_best_reseeding_spends_seeds_only_on_settings_that_could_win():
    """``reseed="near-best"``: a setting's second seed runs only once its first ended within
    budget and within the margin of the best setting's median so far."""
    s = searcher(replicates=2, budget=100.0, reseed="near-best", reseed_margin=0.05)

    def run(trial_id, mig, recon):
        config = s.suggest(trial_id)
        s.on_trial_complete(trial_id, {"metric.mig": mig, "recon_nll": recon})
        return config

    first = run("a", 0.30, 90.0)  # the first within budget: the best so far, reseeded
    again = s.suggest("a2")
    assert again["replicate"] == 1 and again["seed"] == 8
    key = ("objective", "beta", "capacity_max", "gamma", "anneal_fraction", "latent_dim")
    assert [again.get(k) for k in key] == [first.get(k) for k in key]
    s.on_trial_complete("a2", {"metric.mig": 0.20, "recon_nll": 95.0})  # median 0.25
    assert run("b", 0.90, 150.0)["replicate"] == 0  # over budget: not reseeded
    assert run("c", 0.10, 80.0)["replicate"] == 0  # far below the best median: not reseeded
    assert s.suggest("d")["replicate"] == 0  # (so the next setting is a new one)
    s.on_trial_complete("d", {"metric.mig": 0.21, "recon_nll": 80.0})  # within 0.05 of 0.25
    assert s.suggest("d2")["replicate"] == 1
    with pytest.raises(ValueError, match="reseed"):
        searcher(pareto=True, reseed="near-best")


def test_constraint_marks_over_budget_trials_infeasible_and_never_best():
    s = searcher(budget=100.0)
    s.suggest("good")
    s.suggest("better_but_over")
    s.on_trial_result("good", {"step": 10, "train/loss": 1.0})  # curves only: ignored
    s.on_trial_complete("good", {"metric.mig": 0.2, "recon_nll": 90.0})
    s.on_trial_complete("better_but_over", {"metric.mig": 0.9, "recon_nll": 150.0})
    study = s.study
    by_value = {t.value: t for t in study.trials}
    assert by_value[0.2].constraints == {CONSTRAINT: pytest.approx(-10.0)}
    assert by_value[0.9].constraints == {CONSTRAINT: pytest.approx(50.0)}
    assert study.best_trial.value == 0.2


def test_pareto_objective_records_the_budget_as_a_constraint():
    s = searcher(pareto=True)
    s.suggest("a")
    s.suggest("b")
    s.on_trial_complete("a", {"metric.mig": 0.5, "recon_nll": 500.0})
    s.on_trial_complete("b", {"metric.mig": 0.1, "recon_nll": 90.0})
    over, within = s.study.trials
    assert over.values == [0.5, 500.0] and over.user_attrs["recon_nll"] == 500.0
    assert over.constraints == {CONSTRAINT: pytest.approx(400.0)}
    # optuna-dashboard and study.best_trials see feasibility: the better but infeasible
    # trial is not on the feasible front
    assert [t.number for t in s.study.best_trials] == [within.number]


def test_reported_error_fails_the_optuna_trial():
    s = searcher()
    s.suggest("nan")
    s.on_trial_complete("nan", {"step": 30, "error": "diverged: loss is not finite"})
    trial = s.study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert "diverged" in trial.user_attrs["error"]


def test_sampled_configs_build_valid_train_configs():
    s = searcher()
    fixed = {"steps": 1000, "batch_size": 64, "model": "burgess", "dataset": "dsprites"}
    for i in range(20):
        config = {**fixed, **s.suggest(f"t{i}")}
        trial = TrialConfig.from_tune(config)
        train = trial.train_config()
        assert train.objective == config["objective"]
        if train.objective == "capacity":
            expected = round(config["anneal_fraction"] * 1000)
            assert train.capacity_anneal_steps == expected
            assert train.capacity_max == config["capacity_max"]
        assert train.seed == trial.seed == 7 + config["replicate"]


def test_study_persists_in_a_journal_file(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = str(tmp_path / "study.journal")
    s = searcher(storage=JournalStorage(JournalFileBackend(path)), study_name="sweep-x")
    s.suggest("a")
    s.on_trial_complete("a", {"metric.mig": 0.3, "recon_nll": 120.0})
    loaded = optuna.load_study(
        study_name="sweep-x", storage=JournalStorage(JournalFileBackend(path))
    )
    (trial,) = loaded.trials
    assert trial.value == 0.3 and trial.constraints[CONSTRAINT] == pytest.approx(20.0)


def test_initial_points_run_first_each_with_its_replicates():
    ladder = [{"objective": "beta", "beta": b, "latent_dim": 10} for b in (2.0, 8.0)]
    s = searcher(replicates=2, points_to_evaluate=ladder)
    configs = [s.suggest(f"t{i}") for i in range(6)]
    firsts = [(c["objective"], c.get("beta"), c["replicate"]) for c in configs[:4]]
    assert sorted(firsts) == [
        ("beta", 2.0, 0),
        ("beta", 2.0, 1),
        ("beta", 8.0, 0),
        ("beta", 8.0, 1),
    ]
    assert configs[4]["replicate"] == 0 and configs[5]["replicate"] == 1


def test_curves_carry_the_capacity_only_for_the_capacity_objective():
    from sweeps.trial.trainable import curve_row

    metrics = {
        "step": 20,
        "loss": 9.0,
        "recon_nll": 8.0,
        "kl": 1.0,
        "capacity": 5.0,
        "images_per_s": 100.0,
        "kl_per_dim": [0.5, 0.5],
    }
    beta = curve_row(metrics, "beta")
    assert "train/capacity" not in beta and beta["train/kl_per_dim/01"] == 0.5
    assert curve_row(metrics, "capacity")["train/capacity"] == 5.0


def test_a_restored_searcher_finds_its_trials_in_the_study(tmp_path):
    """Tune pickles the searcher with its experiment; the unpickled one (a resumed driver)
    tells the study about trials the first one asked, found by their Tune trial id."""
    import pickle

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    first = searcher(replicates=2, storage=storage, study_name="sweep-r")
    config = first.suggest("tune-a")
    first.suggest("tune-b")
    resumed = pickle.loads(pickle.dumps(first))
    resumed.on_trial_complete("tune-a", {"metric.mig": 0.4, "recon_nll": 80.0})
    resumed.on_trial_complete("tune-b", {"step": 5, "error": "diverged: loss is not finite"})
    a, b = resumed.study.trials
    assert (a.number, a.value, a.user_attrs["tune_trial_id"]) == (
        config["optuna_trial"],
        0.4,
        "tune-a",
    )
    assert a.constraints[CONSTRAINT] == pytest.approx(-20.0)
    assert b.state == optuna.trial.TrialState.FAIL and b.user_attrs["replicate"] == 1
    assert resumed.suggest("tune-c")["replicate"] == 0  # sampling goes on after the restore


def test_a_restored_searcher_does_not_replay_the_settings_it_sampled(tmp_path):
    """Tune pickles the searcher when the sweep starts (``tuner.pkl``), before its sampler drew
    anything: a resumed driver's sampler must not draw the same settings again."""
    import pickle

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    first = ConstrainedOptunaSearch(
        space=SearchSpace(steps=1000, latent_dim_range=(4, 32), seed=7),
        metric="metric.mig",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        recon_budget=100.0,
        storage=JournalStorage(JournalFileBackend(str(tmp_path / "study.journal"))),
        study_name="sweep-s",
    )
    pickled = pickle.dumps(first)  # as Tune saves it, before the first trial
    seen = [first.suggest(f"t{i}") for i in range(3)]
    for i in range(3):
        first.on_trial_complete(f"t{i}", {"metric.mig": 0.1, "recon_nll": 90.0})
    resumed = pickle.loads(pickled)
    again = [resumed.suggest(f"t{i}") for i in range(3, 6)]
    params = [{k: v for k, v in c.items() if k != "optuna_trial"} for c in (*seen, *again)]
    assert all(p not in params[:3] for p in params[3:]), params
    assert [c["optuna_trial"] for c in again] == [3, 4, 5]


def test_sweeps_use_no_private_ray_or_optuna_api():
    """Private attributes pin the sweep to one minor version of Ray or Optuna."""
    import re
    from pathlib import Path

    private = re.compile(r"ray\._private|ray\._common|_ot_trials|_ot_study|optuna\._|study\._")
    root = Path(__file__).resolve().parents[2] / "sweeps"
    hits = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(root.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert hits == []


def test_a_run_created_after_its_trial_ended_is_linked_from_the_run_side_only(tmp_path, caplog):
    """Optuna refuses to change a finished trial: the link says so once and raises nothing
    (it was a warning per trial, 8,158 of them at 10,000 stand-in trials); a trial still
    running gets the run id."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from analysis.schema import MLFLOW_RUN_ATTR
    from sweeps.search.study import StudyLink

    journal = tmp_path / "optuna.journal"
    study = optuna.create_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(journal)))
    )
    ended, running = study.ask(), study.ask()
    study.tell(ended, 1.0)
    link = StudyLink(str(journal), "s")
    with caplog.at_level("WARNING", logger="sweeps.search.study"):
        assert link(ended.number, "run-a") is False
        assert link(ended.number, "run-a2") is False
        assert link(running.number, "run-b") is True
    assert len(caplog.records) == 1 and "ended before its MLflow run" in caplog.text
    trials = optuna.load_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(journal)))
    ).trials
    assert MLFLOW_RUN_ATTR not in trials[0].user_attrs
    assert trials[1].user_attrs[MLFLOW_RUN_ATTR] == "run-b"
