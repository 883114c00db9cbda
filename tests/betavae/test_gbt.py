"""HistGBTClassifier against scikit-learn's GradientBoostingClassifier() (what DCI uses)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from betavae.metrics.gbt import HistGBTClassifier


def make_problem(
    n: int, n_classes: int, rng: np.random.Generator, *, duplicate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``[n]`` and features ``[n, d]``: noisy monotone functions of the label, noise,
    optionally a duplicate of the first feature (last column)."""
    y = rng.integers(0, n_classes, n)
    t = y / (n_classes - 1)
    columns = [
        np.tanh(2 * t - 1) + 0.15 * rng.standard_normal(n),
        t**3 + 0.3 * rng.standard_normal(n),
        rng.integers(0, 2, n) * t + 0.1 * rng.standard_normal(n),
        rng.standard_normal(n),
        rng.standard_normal(n),
    ]
    if duplicate:
        columns.append(columns[0])
    return np.stack(columns, axis=1), y


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(model.predict(x) == y))


@pytest.mark.parametrize(
    ("n_classes", "n_train"),
    [(2, 3000), (3, 3000), (30, 1200)],
)
def test_matches_sklearn_importances_and_accuracy(n_classes: int, n_train: int) -> None:
    rng = np.random.default_rng(n_classes)
    x, y = make_problem(n_train + 1000, n_classes, rng)
    x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    ours = HistGBTClassifier().fit(x_train, y_train)
    ref = GradientBoostingClassifier(random_state=0).fit(x_train, y_train)

    # Feature 0 and its duplicate (5) tie exactly, so each tree credits one of the two at
    # random, in sklearn as in ours: compare their sum.
    def merged(importance: np.ndarray) -> np.ndarray:
        return np.append(importance[0] + importance[5], importance[1:5])

    ours_imp, ref_imp = merged(ours.feature_importances_), merged(ref.feature_importances_)
    assert np.abs(ours_imp - ref_imp).max() <= 0.05
    assert np.argmax(ours_imp) == np.argmax(ref_imp)
    assert ours.feature_importances_.sum() == pytest.approx(1.0)
    assert abs(accuracy(ours, x_train, y_train) - accuracy(ref, x_train, y_train)) <= 0.02
    assert abs(accuracy(ours, x_test, y_test) - accuracy(ref, x_test, y_test)) <= 0.03


@pytest.mark.parametrize("refine_features", [2, 0])
def test_exact_when_features_have_few_values(refine_features: int) -> None:
    """With ≤ max_bins distinct values per feature the bins are exact: same trees as sklearn,
    with or without the exact search inside bins."""
    rng = np.random.default_rng(7)
    x, y = make_problem(1500, 3, rng, duplicate=False)
    x = np.round(x * 30) / 30  # ≤ 256 distinct values per feature
    ours = HistGBTClassifier(refine_features=refine_features).fit(x, y)
    ref = GradientBoostingClassifier(random_state=0).fit(x, y)
    np.testing.assert_allclose(ours.decision_function(x), ref.decision_function(x), atol=1e-9)
    np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_, atol=2e-3)
    fresh = np.round(rng.standard_normal((500, x.shape[1])) * 30) / 30
    assert np.mean(ours.predict(fresh) == ref.predict(fresh)) >= 0.99


def test_exact_search_inside_bins_brings_the_fit_closer_to_sklearn() -> None:
    """On continuous features, a split sklearn places between two values of one bin is out of
    the histogram's reach: the exact search inside bins recovers it, so its training
    accuracy is sklearn's and the histogram-only fit's is lower."""
    rng = np.random.default_rng(5)
    x, y = make_problem(3000, 10, rng)
    ref = accuracy(GradientBoostingClassifier(random_state=0).fit(x, y), x, y)
    refined = accuracy(HistGBTClassifier().fit(x, y), x, y)  # measured: 0.834 vs sklearn 0.836
    histogram = accuracy(HistGBTClassifier(refine_features=0).fit(x, y), x, y)  # 0.816
    assert abs(refined - ref) <= 0.01
    assert histogram <= refined - 0.01


def test_copy_of_label_gets_almost_all_importance() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 2000)
    x = np.column_stack([rng.standard_normal((2000, 3)), y + 0.0, rng.standard_normal(2000)])
    model = HistGBTClassifier().fit(x, y)
    assert model.feature_importances_[3] >= 0.98
    assert accuracy(model, x, y) == 1.0


def test_shuffled_labels_score_chance_on_test() -> None:
    rng = np.random.default_rng(2)
    x, y = make_problem(3000, 4, rng)
    y_shuffled = rng.permutation(y)
    model = HistGBTClassifier().fit(x[:2000], y_shuffled[:2000])
    assert accuracy(model, x[:2000], y_shuffled[:2000]) > 0.4  # it fits noise on train...
    assert abs(accuracy(model, x[2000:], y_shuffled[2000:]) - 0.25) < 0.05  # ...not on test
    assert model.feature_importances_.max() < 0.5  # no feature stands out


def test_deterministic_and_labels_kept() -> None:
    rng = np.random.default_rng(3)
    x, y = make_problem(1000, 3, rng)
    labels = np.array([-4, 7, 100])[y]
    a = HistGBTClassifier(n_estimators=20).fit(x, labels)
    b = HistGBTClassifier(n_estimators=20).fit(x.copy(), labels.copy())
    np.testing.assert_array_equal(a.feature_importances_, b.feature_importances_)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    np.testing.assert_array_equal(a.classes_, [-4, 7, 100])
    assert set(np.unique(a.predict(x))) <= {-4, 7, 100}


def test_walking_the_trees_reproduces_training_scores() -> None:
    """Training scores come from the fit; new data walks the trees: both must agree."""
    rng = np.random.default_rng(4)
    for n_classes in (2, 5):
        x, y = make_problem(800, n_classes, rng)
        model = HistGBTClassifier(n_estimators=30).fit(x, y)
        stored = model.decision_function(x)
        walked = model.decision_function(x[:-1])  # another shape: no shortcut
        np.testing.assert_allclose(walked, stored[:-1], rtol=0, atol=1e-12)


def test_no_split_gives_zero_importances_and_prior_prediction() -> None:
    x = np.ones((50, 3))
    y = np.array([0] * 30 + [1] * 20)
    model = HistGBTClassifier(n_estimators=5).fit(x, y)
    np.testing.assert_array_equal(model.feature_importances_, np.zeros(3))
    np.testing.assert_array_equal(model.predict(x), np.zeros(50))


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros(10), np.arange(10) % 2, "2-D"),
        (np.zeros((10, 2)), np.arange(9) % 2, "10 rows but y has 9"),
        (np.full((4, 2), np.nan), np.array([0, 1, 0, 1]), "NaN or infinite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), np.array([0, 1]), "NaN or infinite"),
        (np.zeros((4, 2)), np.zeros(4, dtype=int), "single class"),
        (np.zeros((4, 2)), np.zeros((4, 1), dtype=int), "1-D"),
    ],
)
def test_bad_input_is_refused(x: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HistGBTClassifier().fit(x, y)


def test_bad_settings_and_unfitted_use_are_refused() -> None:
    with pytest.raises(ValueError, match="max_bins"):
        HistGBTClassifier(max_bins=300)
    with pytest.raises(ValueError, match="n_estimators"):
        HistGBTClassifier(n_estimators=0)
    with pytest.raises(ValueError, match="refine_features must be >= 0, got -1"):
        HistGBTClassifier(refine_features=-1)
    with pytest.raises(ValueError, match="not fitted"):
        HistGBTClassifier().predict(np.zeros((2, 2)))
    model = HistGBTClassifier(n_estimators=2).fit(np.eye(4), np.array([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="fitted on 4"):
        model.predict(np.zeros((2, 3)))
