"""Array-level metrics: agreement with the reference definitions, known answers, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import MultiLabelBinarizer
from sklearn.svm import LinearSVC

from betavae.metrics import (
    dci,
    dci_from_importance,
    mig,
    modularity_explicitness,
    modularity_from_mutual_info,
    sap,
    unsupervised,
)
from betavae.metrics.information import discrete_mutual_info, histogram_discretize

SIZES = np.array([3, 6, 10, 8])


def _factors(n, rng):
    return rng.integers(0, SIZES, size=(n, len(SIZES)))


def _data(rng, n_train=1500, n_test=600, noise=0.2, extra=2):
    """Codes = noisy factors plus ``extra`` pure-noise latents."""
    y, yt = _factors(n_train, rng), _factors(n_test, rng)

    def code(f):
        return np.c_[f + noise * rng.normal(size=f.shape), rng.normal(size=(len(f), extra))]

    return code(y), y, code(yt), yt


# -- agreement with the reference definitions ---------------------------------------------
def _reference_discretize(codes, num_bins=20):
    out = np.zeros_like(codes)
    for i in range(codes.shape[1]):
        out[:, i] = np.digitize(codes[:, i], np.histogram(codes[:, i], num_bins)[1][:-1])
    return out


def _reference_mi(a, b):
    return np.array([[mutual_info_score(b[:, j], a[:, i]) for j in range(b.shape[1])]
                     for i in range(a.shape[1])])  # fmt: skip


def test_mig_and_mutual_information_match_the_reference_definition(rng):
    codes, y, _, _ = _data(rng)
    binned = _reference_discretize(codes)
    np.testing.assert_array_equal(histogram_discretize(codes), binned)
    m = _reference_mi(binned, y)
    np.testing.assert_allclose(discrete_mutual_info(histogram_discretize(codes), y), m, atol=1e-12)
    entropy = np.array([mutual_info_score(y[:, j], y[:, j]) for j in range(y.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    assert mig(codes, y)["mig"] == pytest.approx(np.mean((top[0] - top[1]) / entropy), abs=1e-9)


@pytest.mark.parametrize("protocol", ["liblinear", "lbfgs"])
def test_modularity_explicitness_match_the_reference_definition(rng, protocol):
    """liblinear one-vs-rest (the default): scikit-learn's default when disentanglement_lib
    published its numbers; lbfgs multinomial: today's default."""
    codes, y, codes_t, yt = _data(rng)
    m = _reference_mi(_reference_discretize(codes), y)
    sq = m**2
    reference_modularity = np.mean(1 - (sq.sum(1) - sq.max(1)) / (sq.max(1) * (sq.shape[1] - 1)))
    mean, std = codes.mean(0), codes.std(0)
    train, test = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(y.shape[1]):
            if protocol == "lbfgs":
                clf = LogisticRegression()
            else:
                clf = OneVsRestClassifier(LogisticRegression(solver="liblinear"))
            clf.fit((codes - mean) / std, y[:, j])
            mlb = MultiLabelBinarizer()
            train.append(
                roc_auc_score(
                    mlb.fit_transform(y[:, j : j + 1]), clf.predict_proba((codes - mean) / std)
                )
            )
            test.append(
                roc_auc_score(
                    mlb.fit_transform(yt[:, j : j + 1]), clf.predict_proba((codes_t - mean) / std)
                )
            )
    ours = modularity_explicitness(codes, y, codes_t, yt, logistic=protocol)
    assert ours["modularity"] == pytest.approx(reference_modularity, abs=1e-9)
    assert ours["explicitness_train"] == pytest.approx(np.mean(train), abs=1e-9)
    assert ours["explicitness_test"] == pytest.approx(np.mean(test), abs=1e-9)


def test_unsupervised_scores_match_the_reference_definition(rng):
    codes = rng.normal(size=(2000, 5)) @ rng.normal(size=(5, 5))
    cov = np.cov(codes.T)
    tc = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    wc = 2 * np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])).real
    mi = _reference_mi(_reference_discretize(codes), _reference_discretize(codes))
    np.fill_diagonal(mi, 0)
    ours = unsupervised(codes)
    assert ours["gaussian_total_correlation"] == pytest.approx(tc, rel=1e-9)
    assert ours["gaussian_wasserstein_correlation"] == pytest.approx(wc, rel=1e-6)
    assert ours["gaussian_wasserstein_correlation_norm"] == pytest.approx(
        wc / np.trace(cov), rel=1e-6
    )
    assert ours["mutual_info_score"] == pytest.approx(mi.sum() / 20, abs=1e-12)
    independent = unsupervised(rng.normal(size=(5000, 4)))
    assert independent["gaussian_total_correlation"] < 0.01 < ours["gaussian_total_correlation"]


def test_sap_matches_linear_svc(rng):
    codes, y, codes_t, yt = _data(rng, n_train=1000, n_test=400)
    scores = np.zeros((codes.shape[1], y.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(codes.shape[1]):
            for j in range(y.shape[1]):
                clf = LinearSVC(C=0.01, class_weight="balanced").fit(codes[:, i : i + 1], y[:, j])
                scores[i, j] = np.mean(clf.predict(codes_t[:, i : i + 1]) == yt[:, j])
    top = np.sort(scores, axis=0)
    assert sap(codes, y, codes_t, yt)["sap"] == pytest.approx(np.mean(top[-1] - top[-2]), abs=1e-9)


def test_dci_matrix_helpers_match_scipy_entropy(rng):
    r = rng.random((7, 4))
    per_code = 1 - scipy.stats.entropy(r.T + 1e-11, base=4)
    per_factor = 1 - scipy.stats.entropy(r + 1e-11, base=7)
    expected_d = np.sum(per_code * r.sum(1) / r.sum())
    expected_c = np.sum(per_factor * r.sum(0) / r.sum())
    out = dci_from_importance(r)
    assert out["disentanglement"] == pytest.approx(expected_d, abs=1e-12)
    assert out["completeness"] == pytest.approx(expected_c, abs=1e-12)


# -- exact matrix cases ---------------------------------------------------------------------
def test_dci_exact_cases():
    assert dci_from_importance(np.eye(5)) == pytest.approx(
        {"disentanglement": 1, "completeness": 1}
    )
    assert dci_from_importance(np.zeros((5, 5))) == pytest.approx(
        {"disentanglement": 0, "completeness": 0}, abs=1e-9
    )
    duplicated = dci_from_importance(np.vstack([np.eye(5), np.eye(5)]))
    assert duplicated["disentanglement"] == pytest.approx(1.0)
    assert duplicated["completeness"] == pytest.approx(1 - np.log(2) / np.log(10))
    assert dci_from_importance(np.ones((4, 4)))["disentanglement"] == pytest.approx(0, abs=1e-9)


def test_modularity_exact_cases():
    assert modularity_from_mutual_info(np.eye(4)) == 1.0
    assert modularity_from_mutual_info(np.ones((4, 4))) == 0.0
    assert modularity_from_mutual_info(np.zeros((3, 4))) == 0.0
    # one latent informative about two factors equally: 1 − 1/(k − 1)
    assert modularity_from_mutual_info(np.array([[1.0, 1.0, 0.0]])) == pytest.approx(0.5)


# -- sanity representations -------------------------------------------------------------------
def _representations(rng, n=1500):
    y = _factors(n, rng)
    z = y + 0.05 * rng.normal(size=y.shape)
    rotation = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    return y, {
        "perfect": z,
        "constant": np.zeros((n, 4)),
        "duplicated": np.c_[z, z],
        "rotated": (z - z.mean(0)) / z.std(0) @ rotation,
        "noise": rng.normal(size=(n, 4)),
    }


@pytest.fixture(scope="module")
def sanity():
    rng = np.random.default_rng(1)
    y, train = _representations(rng)
    yt, test = _representations(rng, 600)
    out = {}
    for name in train:
        a, b = train[name], test[name]
        out[name] = {
            "mig": mig(a, y)["mig"],
            "dci": dci(a, y, b, yt)["disentanglement"],
            "sap": sap(a, y, b, yt)["sap"],
            "sap_continuous": sap(a, y, b, yt, continuous_factors=True)["sap"],
            "modularity": modularity_explicitness(a, y, b, yt)["modularity"],
        }
    return out


@pytest.mark.parametrize("metric", ["mig", "dci", "sap_continuous", "modularity"])
def test_perfect_scores_high_and_constant_or_noise_low(sanity, metric):
    assert sanity["perfect"][metric] >= 0.9
    assert sanity["constant"][metric] <= 0.2
    if (
        metric != "modularity"
    ):  # pure noise is trivially "modular" (each latent's MI ≈ 0 but uneven)
        assert sanity["noise"][metric] <= 0.2


def test_discrete_sap_is_bounded_by_a_one_feature_linear_classifier(sanity):
    # With discrete factors a latent's SAP score is the accuracy of a 1-D one-vs-rest linear SVM:
    # even a perfect latent cannot sort 10 ordered classes that way, so SAP stays well below 1
    # (here ~0.34) while still separating good from bad representations.
    assert 0.25 < sanity["perfect"]["sap"] < 0.9
    assert sanity["constant"]["sap"] == 0.0
    assert (
        sanity["noise"]["sap"] < 0.05 and sanity["rotated"]["sap"] < sanity["perfect"]["sap"] - 0.15
    )


def test_duplicated_latents_lower_mig_but_not_dci_disentanglement(sanity):
    assert sanity["duplicated"]["mig"] <= 0.1
    assert sanity["duplicated"]["sap"] <= 0.1
    assert sanity["duplicated"]["dci"] >= 0.8


@pytest.mark.parametrize("metric", ["mig", "dci", "sap_continuous"])
def test_rotation_lowers_the_score(sanity, metric):
    assert sanity["rotated"][metric] < sanity["perfect"][metric] - 0.3


# -- invariances --------------------------------------------------------------------------------
def test_permuting_and_rescaling_latents_changes_nothing(rng):
    codes, y, codes_t, yt = _data(rng, n_train=1000, n_test=400)
    perm = rng.permutation(codes.shape[1])
    scale = rng.uniform(0.1, 10, size=codes.shape[1])
    moved, moved_t = codes[:, perm] * scale, codes_t[:, perm] * scale
    assert mig(moved, y) == pytest.approx(mig(codes, y), abs=1e-12)
    assert modularity_explicitness(moved, y, moved_t, yt) == pytest.approx(
        modularity_explicitness(codes, y, codes_t, yt), abs=1e-6
    )
    assert dci(moved, y, moved_t, yt) == pytest.approx(dci(codes, y, codes_t, yt), abs=0.02)
    # SAP's linear SVM is regularised (C = 0.01), so it is invariant to permutation only.
    assert sap(codes[:, perm], y, codes_t[:, perm], yt) == pytest.approx(sap(codes, y, codes_t, yt))


# -- bad input --------------------------------------------------------------------------------
def _call_all(codes, factors):
    return [
        lambda: mig(codes, factors),
        lambda: dci(codes, factors, codes, factors),
        lambda: sap(codes, factors, codes, factors),
        lambda: modularity_explicitness(codes, factors, codes, factors),
    ]


@pytest.mark.parametrize(
    ("codes", "factors", "message"),
    [
        (
            np.zeros((10, 3)),
            np.arange(18).reshape(9, 2) % 3,
            "10 points but factors(_train)? has 9",
        ),
        (np.full((10, 3), np.nan), np.arange(20).reshape(10, 2) % 3, "NaN or infinite"),
        (np.full((10, 3), np.inf), np.arange(20).reshape(10, 2) % 3, "NaN or infinite"),
        (np.zeros(10), np.zeros((10, 2), int), "2-D"),
        (np.zeros((10, 3)), np.zeros(10, int), "2-D"),
        (np.zeros((10, 3)), np.c_[np.arange(10) % 2, np.zeros(10, int)], r"\[:, 1\] is constant"),
        (np.zeros((1, 3)), np.zeros((1, 2), int), "constant|at least 2"),
        (np.zeros((10, 3)), np.full((10, 2), 0.5), "integer class labels"),
    ],
)
def test_bad_input_raises_a_value_error_naming_the_problem(codes, factors, message):
    for fn in _call_all(codes, factors):
        with pytest.raises(ValueError, match=message):
            fn()


def test_unsupervised_bad_input():
    with pytest.raises(ValueError, match="NaN or infinite"):
        unsupervised(np.full((5, 3), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        unsupervised(np.zeros(5))
    with pytest.raises(ValueError, match="at least 2"):
        unsupervised(np.zeros((5, 1)))


def test_test_set_shape_mismatch_is_named(rng):
    codes, y, codes_t, yt = _data(rng, n_train=100, n_test=50)
    with pytest.raises(ValueError, match="codes_test has 3 latents but codes_train has 6"):
        dci(codes, y, codes_t[:, :3], yt)
    with pytest.raises(ValueError, match="codes_test has 50 points but factors_test has 49"):
        sap(codes, y, codes_t, yt[:49])


def test_macro_auc_is_roc_auc_score_per_class_ties_included():
    from betavae.metrics.information import _macro_auc

    rng = np.random.default_rng(3)
    y = rng.integers(0, 6, 500)
    y[y == 5] = 4  # class 5 absent from y: skipped, as the per-class loop skips it
    proba = np.round(rng.random((500, 6)), 1)  # coarse: many tied scores
    classes = np.arange(6)
    expected = np.mean([roc_auc_score(y == c, proba[:, c]) for c in range(5)])
    assert _macro_auc(y, proba, classes) == pytest.approx(expected, abs=1e-12)
    assert _macro_auc(np.zeros(10, int), proba[:10, :1], classes[:1]) == 0.5


@pytest.mark.parametrize(
    "predictor, tol", [("gbt", 0.01), ("gbt-fast", 0.07), ("sklearn-gbt", 0.01)]
)
def test_dci_known_answers_on_codes(predictor, tol):
    """Two factors (5 and 4 classes). Each in its own latent: D = C = I = 1. Both in one latent
    (mixed radix) beside a noise latent: D = 0 (that latent serves two factors), C = 1, I = 1.
    Factor 2 in no latent: I_test = (1 + 1/4) / 2, the second factor at chance. Every
    predictor, scikit-learn's own included."""
    rng = np.random.default_rng(0)

    def factors(n):
        return np.stack([rng.integers(0, 5, n), rng.integers(0, 4, n)], axis=1)

    def jitter(n):
        return 0.01 * rng.normal(size=n)

    cases = {
        "separate": lambda f: np.stack([f[:, 0] + jitter(len(f)), f[:, 1] + jitter(len(f))], 1),
        "one latent": lambda f: np.stack(
            [4 * f[:, 0] + f[:, 1] + jitter(len(f)), rng.normal(size=len(f))], 1
        ),
        "second absent": lambda f: np.stack([f[:, 0] + jitter(len(f)), rng.normal(size=len(f))], 1),
    }
    train, test = factors(1000), factors(500)
    out = {name: dci(code(train), train, code(test), test, predictor=predictor)
           for name, code in cases.items()}  # fmt: skip
    assert out["separate"]["disentanglement"] == pytest.approx(1.0, abs=tol)
    assert out["separate"]["completeness"] == pytest.approx(1.0, abs=tol)
    assert out["separate"]["informativeness_test"] == pytest.approx(1.0, abs=tol)
    assert out["one latent"]["disentanglement"] == pytest.approx(0.0, abs=tol)
    assert out["one latent"]["completeness"] == pytest.approx(1.0, abs=tol)
    assert out["one latent"]["informativeness_test"] == pytest.approx(1.0, abs=max(tol, 0.03))
    assert out["second absent"]["informativeness_test"] == pytest.approx(0.625, abs=0.05)
