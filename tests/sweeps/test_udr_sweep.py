"""UDR in a sweep: a setting's seeds scored against each other as they finish, told to Optuna
once the setting has two, published for MLflow, and the report's score over all of them."""

from __future__ import annotations

import io

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from analysis.schema import TUNE_TRIAL_ATTR
from analysis.trial_files import UDR_CODES_DIR
from betavae.metrics import setting_udr
from sweeps.config import live
from sweeps.search.searcher import ConstrainedOptunaSearch
from sweeps.search.space import SearchSpace
from sweeps.search.udr import NOT_ENOUGH, SEEDS_KEY, UDR_KEY, SettingUDR, fail_waiting


def model_codes(rng: np.random.Generator, factors: np.ndarray, width: int = 4) -> np.ndarray:
    """A model that encodes each factor in a latent of its own (permuted, rescaled, signed):
    the first latents after the permutation; the rest are near-constant (inactive)."""
    codes = rng.normal(size=(len(factors), width)) * 0.01
    for j, latent in enumerate(LATENTS):
        codes[:, latent] += factors[:, j] * rng.choice([-2.0, 0.5, 3.0])
    return codes


#: The latents that carry the factors (the others have KL below UDR's 0.01 threshold).
LATENTS = (2, 0)
KL = np.array([1.5, 0.001, 1.5, 0.001])


def save(folder, trial_id: str, codes: np.ndarray, kl: np.ndarray) -> None:
    (folder / UDR_CODES_DIR).mkdir(exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, codes=codes.astype(np.float32), kl=kl)
    (folder / UDR_CODES_DIR / f"{trial_id}.npz").write_bytes(buffer.getvalue())


@pytest.fixture
def sweep(tmp_path):
    rng = np.random.default_rng(0)
    factors = rng.normal(size=(300, 2))
    return tmp_path, rng, factors, KL


def searcher(folder) -> ConstrainedOptunaSearch:
    return ConstrainedOptunaSearch(
        space=SearchSpace(steps=1000, latent_dim_range=(4, 8), seed=7),
        metric=UDR_KEY,
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        recon_budget=100.0,
        replicates=3,
        udr=SettingUDR(str(folder)),
    )


def test_a_setting_is_told_once_two_seeds_finished_and_the_third_against_all(sweep):
    folder, rng, factors, kl = sweep
    search = searcher(folder)
    live.take_scores()
    ids = ["a", "b", "c"]
    for i in ids:  # one setting, its two other seeds right behind it
        search.suggest(i)
    assert len({frozenset(t.params.items()) for t in search.study.trials}) == 1
    codes = {i: model_codes(rng, factors) for i in ids}
    for i in ids:
        save(folder, i, codes[i], kl)

    search.on_trial_complete("a", {"recon_nll": 90.0, "final": 1.0})
    states = [t.state for t in search.study.trials]
    assert states == [TrialState.RUNNING] * 3  # the first seed waits
    assert live.take_scores() == {}

    search.on_trial_complete("b", {"recon_nll": 95.0, "final": 1.0})
    pair = setting_udr([codes["a"], codes["b"]], [kl, kl])
    trials = search.study.trials
    assert [t.state for t in trials[:2]] == [TrialState.COMPLETE] * 2
    assert [t.values[0] for t in trials[:2]] == pytest.approx(pair)
    assert pair[0] > 0.8  # the same factors, each in a latent of its own: they agree
    assert trials[0].constraints["recon_nll_over_budget"] == pytest.approx(-10.0)
    assert live.take_scores() == {
        "a": {UDR_KEY: pytest.approx(pair[0]), SEEDS_KEY: 2},
        "b": {UDR_KEY: pytest.approx(pair[1]), SEEDS_KEY: 2},
    }

    search.on_trial_complete("c", {"recon_nll": 200.0, "final": 1.0})
    three = setting_udr([codes[i] for i in ids], [kl, kl, kl])
    trials = search.study.trials
    assert trials[2].state == TrialState.COMPLETE
    assert trials[2].values[0] == pytest.approx(three[2])
    assert [t.values[0] for t in trials[:2]] == pytest.approx(pair)  # Optuna keeps its values
    published = live.take_scores()
    assert {i: published[i][UDR_KEY] for i in ids} == pytest.approx(
        dict(zip(ids, three, strict=True))
    )
    assert {published[i][SEEDS_KEY] for i in ids} == {3}


def test_entangled_seeds_score_lower_than_agreeing_ones(sweep):
    _, rng, factors, kl = sweep
    agreeing = [model_codes(rng, factors) for _ in range(3)]
    # Each mixes the factors across every latent, its own way: all active, none alike.
    mixing = [model_codes(rng, factors) @ rng.normal(size=(4, 4)) for _ in range(3)]
    assert min(setting_udr(agreeing, [kl] * 3)) > 0.85
    assert max(setting_udr(mixing, [np.ones(4)] * 3)) < 0.7


def test_a_collapsed_seed_scores_zero_and_a_lone_or_codeless_seed_fails_at_the_end(sweep):
    folder, rng, factors, kl = sweep
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, direction="maximize", study_name="s")
    udr = SettingUDR(str(folder))

    def finished(tune_id: str, x: float, codes=None, model_kl=kl, waiting=True) -> int:
        study.enqueue_trial({"x": x})
        trial = study.ask()
        trial.suggest_float("x", 0, 10)
        trial.set_user_attr(TUNE_TRIAL_ATTR, tune_id)
        if waiting:
            trial.set_user_attr("udr_waiting", True)
        if codes is not None:
            save(folder, tune_id, codes, model_kl)
        return trial.number

    n = finished("live1", 1.0, model_codes(rng, factors))
    assert udr.tell_setting(study, storage, {"x": 1.0}, n) == {}
    n = finished("dead", 1.0, model_codes(rng, factors), np.zeros(4))  # no active latent
    assert udr.tell_setting(study, storage, {"x": 1.0}, n) == {"dead": {UDR_KEY: 0.0, SEEDS_KEY: 2}}
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.COMPLETE]
    finished("lone", 2.0, model_codes(rng, factors))
    n = finished("codeless", 3.0)  # its codes never reached the storage: it waits
    assert udr.tell_setting(study, storage, {"x": 3.0}, n) == {}
    finished("waits", 4.0, model_codes(rng, factors))
    finished("errored", 4.0, waiting=False)  # in ERROR, open: --resume retries it
    n = finished("nan", 5.0, model_codes(rng, factors) * np.nan)
    assert udr.tell_setting(study, storage, {"x": 5.0}, n) == {}
    n = finished("partner", 5.0, model_codes(rng, factors))
    udr.tell_setting(study, storage, {"x": 5.0}, n)  # UDR refuses NaN codes: both end FAIL
    assert fail_waiting(study, storage) == 3  # live1 (its partner collapsed), lone, codeless
    by_id = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in study.trials}
    assert {k for k, t in by_id.items() if t.user_attrs.get("error") == NOT_ENOUGH} == {
        "live1",
        "lone",
        "codeless",
    }
    assert "NaN" in by_id["nan"].user_attrs["error"] and by_id["partner"].state == TrialState.FAIL
    assert by_id["dead"].user_attrs.get("error") is None
    # The setting with a seed to retry keeps its waiting seed open for the retry's end.
    assert by_id["waits"].state == by_id["errored"].state == TrialState.RUNNING


def test_the_report_scores_each_setting_over_all_its_finished_seeds(sweep):
    from analysis.runs import local_udr_codes, score_udr

    folder, rng, factors, kl = sweep
    codes = [model_codes(rng, factors) for _ in range(3)]
    for i, c in enumerate(codes):
        save(folder, f"t{i}", c, kl)
    records = [{"trial_id": f"t{i}", "status": "FINISHED", "setting": "s"} for i in range(3)] + [
        {"trial_id": "t9", "status": "FAILED", "setting": "s"}
    ]
    score_udr(records, local_udr_codes(folder / UDR_CODES_DIR))
    assert [r.get("metric.udr") for r in records[:3]] == pytest.approx(setting_udr(codes, [kl] * 3))
    assert "metric.udr" not in records[3]


def test_the_report_leaves_a_setting_udr_refuses_unscored_and_names_it(sweep, capsys):
    from analysis.runs import local_udr_codes, score_udr

    folder, rng, factors, kl = sweep
    save(folder, "good0", model_codes(rng, factors), kl)
    save(folder, "good1", model_codes(rng, factors), kl)
    save(folder, "nan0", model_codes(rng, factors) * np.nan, kl)
    save(folder, "nan1", model_codes(rng, factors), kl)
    (folder / UDR_CODES_DIR / "torn.npz").write_bytes(b"PK\x03\x04 cut short")
    records = [
        {"trial_id": t, "status": "FINISHED", "setting": t[:-1]}
        for t in ("good0", "good1", "nan0", "nan1", "torn")
    ]
    score_udr(records, local_udr_codes(folder / UDR_CODES_DIR))
    udr = {r["trial_id"]: r.get("metric.udr") for r in records}
    assert udr["good0"] is not None and udr["good1"] is not None
    assert udr["nan0"] is udr["nan1"] is udr["torn"] is None
    err = capsys.readouterr().err
    assert "setting nan: UDR not scored" in err and "torn.npz: UDR codes not read" in err
