"""Histogram gradient-boosted trees that reproduce scikit-learn's ``GradientBoostingClassifier()``.

The DCI metric (Eastwood & Williams 2018, as in disentanglement_lib) fits one default
``GradientBoostingClassifier`` per factor and reads its ``feature_importances_``. scikit-learn's
exact trees take minutes on dSprites-sized inputs; this module fits the same model
(Friedman 2001, "Greedy function approximation", Algorithm 6 *LK_TreeBoost*) in seconds:

- init: class-prior log-odds (symmetric multinomial logit for K > 2 classes, logit for K = 2);
- each of ``n_estimators`` stages fits, on the negative gradient ``y − p`` of the log-loss, one
  least-squares regression tree of depth ``max_depth`` per class (one tree in total for
  K = 2), each node split where the squared error drops most (Friedman's improvement, eq. 35;
  min_samples_split 2, min_samples_leaf 1, no subsampling; a node no split improves by more
  than machine ε per sample stays a leaf, as sklearn leaves nodes of impurity ≤ ε);
- each leaf then takes one Newton step, ``Σg / Σp(1−p)``, times ``(K−1)/K`` for K > 2
  (Friedman, Hastie & Tibshirani 2000, as scikit-learn computes it), shrunk by
  ``learning_rate``;
- ``feature_importances_``: per tree the weighted impurity decrease per feature, averaged over
  the trees that split, normalised to sum 1.

What differs is where a split may fall. scikit-learn tries every midpoint between a node's
sorted values; here each feature is cut once into at most ``max_bins`` quantile bins
(``_gbt_bins``), every bin edge is scanned through histograms, and each node's two best
features are also searched exactly, over the node's own samples, inside the bins around their
best edge and inside the node's first and last bins (``_gbt_split.refine``): that is where
scikit-learn's finer choice matters (isolating a few extreme samples, placing a class
boundary), and without it the importance of informative features comes out several points low.
With at most ``max_bins`` distinct values per feature the search is exact and the trees are
scikit-learn's (up to ties). Thresholds are placed, as scikit-learn places them, midway
between the largest value a node sends left and the smallest it sends right. Equally good
features are chosen between at random, as scikit-learn's shuffled feature order does, from a
seeded generator, so fits are deterministic.

Speed: the T trees of a stage grow together, level by level. The gradient histograms of every
(tree, node) of a level come from one product of a sparse one-hot ``[B·d, n]`` matrix with a
dense ``[n, columns]`` matrix holding each sample's gradient in its node's column; the sample
count rides along in the same number (``g + 2**k``, decoded exactly). Only the smaller child of
each split is histogrammed; its sibling is the parent minus it. Samples are routed by integer
atom ranks; new data by float thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from betavae.metrics._gbt_bins import Bins, bin_features
from betavae.metrics._gbt_split import REFINE_FEATURES, Splits, best_splits, prefix_sums

__all__ = ["HistGBTClassifier"]

# sklearn's ``_safe_divide``: a leaf whose mean hessian is below this gets value 0.
_TINY_HESSIAN = 1e-150


def _to_larger(
    values2: np.ndarray, column: np.ndarray, feature2: np.ndarray, threshold2: np.ndarray
) -> np.ndarray:
    """``[n, T]`` bool: whether ``values2[i, feature2[c]] > threshold2[c]``, ``c = column[i, t]``.

    ``values2`` ``[n, 2d]``: ranks or values, then their negations (see ``Splits``).
    """
    width = values2.shape[1]
    row_start = np.arange(0, values2.size, width, dtype=np.intp)[:, None]
    return values2.ravel().take(row_start + feature2.take(column)) > threshold2.take(column)


def _child_histograms(
    bins: Bins,
    packed_grad: np.ndarray,
    column: np.ndarray,
    s_cum: np.ndarray,
    n_cum: np.ndarray,
    buffer: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Prefix sums ``[B, d, 2m]`` of the gradient and count histograms of m nodes' children.

    ``packed_grad`` ``[n, T]`` is ``g + big``; ``column`` ``[n, T]`` each sample's child column
    (smaller children ``< m``). ``s_cum``, ``n_cum`` ``[B, d, m]`` are the parents' prefix
    sums (``n_cum`` may broadcast). ``buffer``: scratch of at least ``n·m`` floats.
    """
    n_bins, d, m = s_cum.shape
    n, n_trees = column.shape
    # Each sample's g + big in the column of its smaller child (0 elsewhere): one product
    # then sums the gradients and, in multiples of big, the counts of every smaller child.
    packed = buffer[: n * m].reshape(n, m // n_trees, n_trees)
    for node in range(m // n_trees):
        in_small = column == np.arange(node * n_trees, (node + 1) * n_trees)
        np.multiply(packed_grad, in_small, out=packed[:, node])
    small = (bins.onehot @ packed.reshape(n, m)).reshape(n_bins, d, m)
    small_n = small * (1.0 / bins.big)
    np.rint(small_n, out=small_n)  # |Σg| < count ≤ big / 2 in every bin
    small -= small_n * bins.big  # exact: both are near multiples of a power of two
    prefix_sums(small)
    prefix_sums(small_n)
    child_s = np.empty((n_bins, d, 2 * m))
    child_n = np.empty((n_bins, d, 2 * m))
    child_s[:, :, :m] = small
    np.subtract(s_cum, small, out=child_s[:, :, m:])
    child_n[:, :, :m] = small_n
    np.subtract(n_cum, small_n, out=child_n[:, :, m:])
    return child_s, child_n


@dataclass(frozen=True)
class _Stage:
    """The T trees of one boosting stage, for prediction (layout as in ``Splits``).

    Attributes:
        levels: per level ``l``, ``to_larger_thresholds`` ``(feature2, threshold2)``, each
            ``[T·2**l]``.
        value: ``[T·2**depth]`` leaf values, learning rate included, by leaf column.
    """

    levels: list[tuple[np.ndarray, np.ndarray]]
    value: np.ndarray


def _grow_stage(
    bins: Bins,
    neg_grad: np.ndarray,
    max_depth: int,
    rng: np.random.Generator,
    importance: np.ndarray,
    refine_features: int = REFINE_FEATURES,
) -> tuple[list[Splits], np.ndarray]:
    """Grow the T regression trees of one stage on ``neg_grad`` ``[n, T]``, level by level.

    Returns each level's splits and ``column`` ``[n, T]``, each sample's leaf column.
    Adds each split's impurity decrease to ``importance`` ``[d]`` in place. ``refine_features``:
    see ``best_splits``.
    """
    n, n_trees = neg_grad.shape
    d = bins.codes.shape[1]
    column = np.empty((n, n_trees), dtype=np.intp)
    column[:] = np.arange(n_trees)
    packed_grad = neg_grad + bins.big
    buffer = np.empty(n * n_trees * 2 ** (max_depth - 1))
    s_cum = prefix_sums((bins.onehot @ neg_grad).reshape(-1, d, n_trees))
    n_cum = None
    alive = np.ones(n_trees, dtype=bool)
    levels = []
    for level in range(max_depth):
        m = n_trees * 2**level
        splits = best_splits(s_cum, n_cum, alive, bins, rng, column, neg_grad, refine_features)
        importance += np.bincount(splits.feature, splits.decrease, minlength=d)
        levels.append(splits)
        feature2, rank2 = splits.to_larger_keys(d)
        if level == 0:  # every sample is in column t of tree t
            to_larger = bins.ranks[:, feature2] > rank2
        else:
            to_larger = _to_larger(bins.ranks, column, feature2, rank2)
        column += to_larger * m
        if level + 1 < max_depth:
            parent_n = bins.count_cum if n_cum is None else n_cum
            s_cum, n_cum = _child_histograms(bins, packed_grad, column, s_cum, parent_n, buffer)
        alive = np.tile(splits.split, 2)
    return levels, column


def _leaf_values(
    neg_grad: np.ndarray, hessian: np.ndarray, column: np.ndarray, n_leaves: int, scale: float
) -> np.ndarray:
    """One Newton step per leaf, ``scale · Σg / Σh`` (sklearn's leaf update), ``[n_leaves]``.

    ``neg_grad``, ``hessian``, ``column`` (each sample's leaf column): ``[n, T]``. Leaves whose
    hessian sum is below 1e-150 (empty ones; sklearn's ``_safe_divide``) get 0.
    """
    leaf = column.ravel()
    g_sum = np.bincount(leaf, weights=neg_grad.ravel(), minlength=n_leaves)
    h_sum = np.bincount(leaf, weights=hessian.ravel(), minlength=n_leaves)
    ok = h_sum >= _TINY_HESSIAN
    return np.where(ok, scale * g_sum / np.where(ok, h_sum, 1.0), 0.0)


def _gradients(raw: np.ndarray, label_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Negative gradient ``y − p`` and diagonal hessian ``p(1−p)`` of the log-loss, ``[n, T]``.

    T = 1 (binomial, ``p = expit(raw)``, ``label_index`` the positive samples' flat indices)
    or K (multinomial, ``p = softmax(raw)``, ``label_index`` = ``i·K + y_i``).
    """
    if raw.shape[1] == 1:
        prob = 0.5 * (1.0 + np.tanh(0.5 * raw))  # expit without overflow
    else:
        top = raw.max()
        if raw.min() > top - 700.0:  # one shift for all rows keeps exp in range
            prob = np.exp(raw - top)
        else:
            prob = np.exp(raw - raw.max(axis=1, keepdims=True))
        prob /= (prob @ np.ones(raw.shape[1]))[:, None]
    hessian = prob * (1.0 - prob)
    np.negative(prob, out=prob)
    prob.reshape(-1)[label_index] += 1.0
    return prob, hessian


def _check_X(X: np.ndarray, name: str = "X") -> np.ndarray:
    """``X`` as a finite float32 ``[n, d]`` array (sklearn's trees also work in float32)."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [n, d] array, got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column, got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} has NaN or infinite values; all values must be finite")
    X32 = X.astype(np.float32)
    if not np.all(np.isfinite(X32)):
        raise ValueError(f"{name} has values beyond float32 range (±3.4e38)")
    return X32


class HistGBTClassifier:
    """Gradient-boosted regression trees on the log-loss (Friedman 2001), histogram-based.

    Reproduces scikit-learn's ``GradientBoostingClassifier()`` with default settings
    statistically: same loss, init, tree criterion and stopping rules, Newton leaf values and
    ``feature_importances_``; splits come from ``max_bins`` quantile bins per feature plus an
    exact search inside a few bins (see the module docstring) for each node's
    ``refine_features`` best features (0: histogram splits only, faster and a few points
    further from scikit-learn's importances and training accuracy). Deterministic for a given
    ``random_state``, which only breaks ties between equally good features.

    Attributes (after ``fit``):
        classes_: ``[K]`` sorted labels seen in ``y``.
        feature_importances_: ``[d]`` impurity-based importances, summing to 1 (all zeros if
            no tree split).
        n_features_in_: d.
    """

    def __init__(
        self,
        *,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        max_depth: int = 3,
        max_bins: int = 256,
        refine_features: int = REFINE_FEATURES,
        random_state: int = 0,
    ) -> None:
        if n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {n_estimators}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        if not 1 <= max_depth <= 10:
            raise ValueError(f"max_depth must be in 1..10, got {max_depth}")
        if not 2 <= max_bins <= 256:
            raise ValueError(f"max_bins must be in 2..256 (bins are uint8), got {max_bins}")
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        if refine_features < 0:
            raise ValueError(f"refine_features must be >= 0, got {refine_features}")
        self.max_bins = max_bins
        self.refine_features = refine_features
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> HistGBTClassifier:
        """Fit on ``X`` ``[n, d]`` (finite numbers) and labels ``y`` ``[n]`` (≥ 2 classes)."""
        X = _check_X(X)
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be a 1-D [n] array of labels, got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}; they must match")
        self.classes_, encoded = np.unique(y, return_inverse=True)
        n_classes = self.classes_.size
        if n_classes < 2:
            raise ValueError(f"y has a single class ({self.classes_[0]!r}); need at least 2")
        self.n_features_in_ = X.shape[1]

        encoded = encoded.reshape(-1)
        n, d = X.shape
        prior = np.bincount(encoded, minlength=n_classes) / n
        if n_classes == 2:  # binomial deviance: one tree per stage on the positive class
            self._init = np.log(prior[1:] / prior[:1])
            label_index = np.flatnonzero(encoded == 1)
            scale = 1.0
        else:  # multinomial deviance: one tree per class, symmetric logit init
            self._init = np.log(prior) - np.log(prior).mean()
            label_index = np.arange(n) * n_classes + encoded
            scale = (n_classes - 1) / n_classes
        bins = bin_features(X, self.max_bins)
        rng = np.random.default_rng(self.random_state)
        raw = np.tile(self._init, (n, 1))
        importance = np.zeros(d)
        self._stages: list[_Stage] = []
        n_leaves = raw.shape[1] * 2**self.max_depth
        for _ in range(self.n_estimators):
            neg_grad, hessian = _gradients(raw, label_index)
            levels, leaf = _grow_stage(
                bins, neg_grad, self.max_depth, rng, importance, self.refine_features
            )
            value = _leaf_values(neg_grad, hessian, leaf, n_leaves, scale)
            value *= self.learning_rate
            raw += value.take(leaf)
            thresholds = [split.to_larger_thresholds(d) for split in levels]
            self._stages.append(_Stage(thresholds, value))
        total = importance.sum()
        self.feature_importances_ = importance / total if total > 0 else importance
        # decision_function(X) on the training set returns these without walking the trees.
        self._train = (X, raw)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Raw scores ``[n, T]`` (T = 1 for two classes, else K) for ``X`` ``[n, d]``."""
        if not hasattr(self, "_stages"):
            raise ValueError("this HistGBTClassifier is not fitted yet; call fit(X, y) first")
        X = _check_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features but the model was fitted on {self.n_features_in_}"
            )
        train_X, train_raw = self._train
        if X.shape == train_X.shape and np.array_equal(X, train_X):
            return train_raw.copy()
        n, n_trees = X.shape[0], self._init.size
        values2 = np.concatenate([X, -X], axis=1)
        raw = np.tile(self._init, (n, 1))
        for stage in self._stages:
            column = np.empty((n, n_trees), dtype=np.intp)
            column[:] = np.arange(n_trees)
            for level, (feature2, threshold2) in enumerate(stage.levels):
                to_larger = _to_larger(values2, column, feature2, threshold2)
                column += to_larger * (n_trees * 2**level)
            raw += stage.value.take(column)
        return raw

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted labels ``[n]`` (from ``classes_``) for ``X`` ``[n, d]``."""
        raw = self.decision_function(X)
        if raw.shape[1] == 1:
            return self.classes_[(raw[:, 0] >= 0).astype(np.int64)]
        return self.classes_[raw.argmax(axis=1)]
