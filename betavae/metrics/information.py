"""Information-based metrics on posterior-mean codes: MIG, modularity, unsupervised scores.

Definitions and defaults follow disentanglement_lib (Locatello et al. 2019): each latent is
discretised into ``num_bins`` equal-width histogram bins over its observed range, mutual
information is the discrete MI of the contingency table in nats (what scikit-learn's
``mutual_info_score`` computes), entropies are the MI of a variable with itself.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from betavae.metrics._checks import (
    DEFAULT_LOGISTIC,
    Logistic,
    check_codes,
    check_pair,
    check_train_test,
    fit_logistic,
    map_factors,
)


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """``[N, d]`` codes → ``[N, d]`` int64 bin indices in ``1..num_bins``.

    Bin edges are ``np.histogram``'s equal-width edges per latent; ``np.digitize`` against all
    but the last edge, so the maximum falls into the top bin.
    """
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, i], bins=num_bins)
        out[:, i] = np.digitize(codes[:, i], edges[:-1])
    return out


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1), len(values)


def discrete_mutual_info(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI matrix ``[p, q]`` (nats) between the columns of label arrays ``[N, p]`` and ``[N, q]``."""
    n = a.shape[0]
    a_cols = [_dense_labels(a[:, i]) for i in range(a.shape[1])]
    b_cols = [_dense_labels(b[:, j]) for j in range(b.shape[1])]
    out = np.zeros((a.shape[1], b.shape[1]))
    for i, (ai, na) in enumerate(a_cols):
        pa = np.bincount(ai, minlength=na) / n
        for j, (bj, nb) in enumerate(b_cols):
            joint = np.bincount(ai * nb + bj, minlength=na * nb).reshape(na, nb) / n
            pb = np.bincount(bj, minlength=nb) / n
            nz = joint > 0
            outer = np.outer(pa, pb)[nz]
            out[i, j] = max(float(np.sum(joint[nz] * np.log(joint[nz] / outer))), 0.0)
    return out


def discrete_entropy(labels: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each column of an ``[N, k]`` label array."""
    out = np.zeros(labels.shape[1])
    for j in range(labels.shape[1]):
        dense, size = _dense_labels(labels[:, j])
        p = np.bincount(dense, minlength=size) / len(dense)
        p = p[p > 0]
        out[j] = -np.sum(p * np.log(p))
    return out


def mig(codes: np.ndarray, factors: np.ndarray, *, num_bins: int = 20) -> dict[str, float]:
    """Mutual Information Gap (Chen et al. 2018).

    For each factor, the gap between the two latents with the highest mutual information,
    divided by the factor's entropy; averaged over factors. ``codes`` ``[N, d]`` (d ≥ 2),
    ``factors`` ``[N, k]`` integer classes. Returns ``{"mig": float}``.
    """
    codes, factors = check_pair(codes, factors, min_latents=2)
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)  # [d, k]
    top = np.sort(mi, axis=0)[::-1]
    gap = (top[0] - top[1]) / discrete_entropy(factors)
    return {"mig": float(np.mean(gap))}


def modularity_from_mutual_info(mutual_info: np.ndarray) -> float:
    """Modularity (Ridgeway & Mozer 2018) from an MI matrix ``[d latents, k factors]``.

    Per latent: ``1 − (Σ_j MI² − max_j MI²) / (max_j MI² · (k − 1))``, 0 for a latent with no
    information; averaged over latents.
    """
    mutual_info = np.asarray(mutual_info, dtype=np.float64)
    if mutual_info.ndim != 2 or mutual_info.shape[1] < 2:
        raise ValueError(f"mutual_info must be [d, k] with k >= 2, got {mutual_info.shape}")
    sq = mutual_info**2
    top = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = 1.0 - (sq.sum(axis=1) - top) / (top * (sq.shape[1] - 1))
    score[top == 0] = 0.0
    return float(np.mean(score))


def unsupervised(codes: np.ndarray, *, num_bins: int = 20) -> dict[str, float]:
    """Unsupervised scores of ``[N, d]`` codes (disentanglement_lib's definitions).

    - ``gaussian_total_correlation``: KL between N(0, Σ) and the product of its marginals,
      ``0.5·(Σ log diag Σ − log det Σ)``, Σ the codes' covariance;
    - ``gaussian_wasserstein_correlation``: ``2·tr Σ − 2·tr (Σ·diag Σ)^½``, and ``_norm``: that
      divided by ``tr Σ``;
    - ``mutual_info_score``: mean discrete MI over pairs of distinct latents.

    Latents with zero variance carry no correlation and are left out of the Gaussian scores.
    """
    codes = check_codes(codes, min_latents=2)
    if codes.shape[0] < 2:
        raise ValueError(f"codes has {codes.shape[0]} points; need at least 2")
    d = codes.shape[1]
    cov = np.atleast_2d(np.cov(codes, rowvar=False))
    keep = np.diag(cov) > 0
    cov = cov[np.ix_(keep, keep)]
    scores: dict[str, float] = {}
    if cov.size == 0:
        scores.update(
            gaussian_total_correlation=0.0,
            gaussian_wasserstein_correlation=0.0,
            gaussian_wasserstein_correlation_norm=0.0,
        )
    else:
        diag = np.diag(cov)
        scores["gaussian_total_correlation"] = float(
            0.5 * (np.sum(np.log(diag)) - np.linalg.slogdet(cov)[1])
        )
        root = scipy.linalg.sqrtm(cov * diag[:, None])
        wasserstein = float(2 * np.trace(cov) - 2 * np.real(np.trace(root)))
        scores["gaussian_wasserstein_correlation"] = wasserstein
        scores["gaussian_wasserstein_correlation_norm"] = wasserstein / float(np.trace(cov))
    binned = histogram_discretize(codes, num_bins)
    mi = discrete_mutual_info(binned, binned)
    np.fill_diagonal(mi, 0.0)
    scores["mutual_info_score"] = float(mi.sum() / (d * d - d))
    return scores


def modularity_explicitness(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    num_bins: int = 20,
    classifier_points: int | None = None,
    logistic: Logistic = DEFAULT_LOGISTIC,
) -> dict[str, float]:
    """Modularity and explicitness (Ridgeway & Mozer 2018), disentanglement_lib's protocol.

    Modularity from the discrete MI of the training codes; explicitness per factor is the
    macro ROC-AUC (one-vs-rest) of a logistic regression (``logistic`` protocol, see
    ``fit_logistic``) on standardised codes, on the training and the test points, averaged
    over factors. ``classifier_points`` limits the logistic regressions to the first that many
    training points (modularity uses all).
    Returns ``modularity``, ``explicitness_train``, ``explicitness_test``.
    """
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test
    )
    mi = discrete_mutual_info(histogram_discretize(codes_train, num_bins), factors_train)
    mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant latent stays constant (0) instead of NaN
    fit = slice(None, classifier_points)
    x_train, x_test = (codes_train[fit] - mean) / std, (codes_test - mean) / std
    y_train = factors_train[fit]
    results = map_factors(
        lambda j: _explicitness(x_train, y_train[:, j], x_test, factors_test[:, j], logistic),
        factors_train,
    )
    train = [r[0] for r in results]
    test = [r[1] for r in results]
    return {
        "modularity": modularity_from_mutual_info(mi),
        "explicitness_train": float(np.mean(train)),
        "explicitness_test": float(np.mean(test)),
    }


def _explicitness(x_train, y_train, x_test, y_test, logistic: Logistic) -> tuple[float, float]:
    clf = fit_logistic(x_train, y_train, logistic)
    return (
        _macro_auc(y_train, clf.predict_proba(x_train), clf.classes_),
        _macro_auc(y_test, clf.predict_proba(x_test), clf.classes_),
    )


def _macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Mean one-vs-rest ROC-AUC over the classes present in ``y`` (as a multilabel macro AUC).

    Each class's AUC is the Mann–Whitney statistic of its probability column, tied scores
    taking their average rank: exactly ``roc_auc_score``'s value, for all classes in one
    vectorised ranking instead of one call per class.
    """
    import scipy.stats

    positive = y[:, None] == classes[None, :]
    n_pos = positive.sum(axis=0)
    n_neg = y.shape[0] - n_pos
    present = (n_pos > 0) & (n_neg > 0)
    if not present.any():
        return 0.5
    ranks = scipy.stats.rankdata(proba[:, present], axis=0)  # ties: average ranks
    pos, neg = n_pos[present], n_neg[present]
    rank_sum = np.einsum("ij,ij->j", ranks, positive[:, present])
    auc = (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)
    return float(np.mean(auc))
