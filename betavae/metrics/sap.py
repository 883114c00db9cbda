"""SAP score (Kumar et al. 2018) with disentanglement_lib's protocol.

For discrete factors the score of (latent i, factor j) is the test accuracy of
``LinearSVC(C=0.01, class_weight="balanced")`` trained on latent i alone; for continuous
factors it is the squared correlation. SAP is the mean over factors of the gap between the two
best latents. (liblinear fits these 1-feature problems in ~1.5 s for 10 latents × dSprites'
113 classes, so there is nothing to gain from a custom solver.)
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from betavae.metrics._checks import check_train_test


def _svc_accuracy(x_train, y_train, x_test, y_test) -> float:
    with warnings.catch_warnings():  # the reference protocol runs liblinear as it comes
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LinearSVC(C=0.01, class_weight="balanced").fit(x_train[:, None], y_train)
    return float(np.mean(clf.predict(x_test[:, None]) == y_test))


def sap_score_matrix(
    codes_train, factors_train, codes_test, factors_test, *, continuous_factors: bool = False
) -> np.ndarray:
    """The ``[d, k]`` matrix of per-(latent, factor) scores behind SAP."""
    d, k = codes_train.shape[1], factors_train.shape[1]
    scores = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            if continuous_factors:
                cov = np.cov(codes_train[:, i], factors_train[:, j], ddof=1)
                scores[i, j] = cov[0, 1] ** 2 / (cov[0, 0] * cov[1, 1]) if cov[0, 0] > 1e-12 else 0
            else:
                scores[i, j] = _svc_accuracy(
                    codes_train[:, i], factors_train[:, j], codes_test[:, i], factors_test[:, j]
                )
    return scores


def sap(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    continuous_factors: bool = False,
) -> dict[str, float]:
    """Separated Attribute Predictability: mean over factors of the top-two latent score gap.

    Codes ``[N, d]`` (d ≥ 2), factors ``[N, k]`` integer classes. Returns ``{"sap": float}``.
    """
    codes_train, factors_train, codes_test, factors_test = check_train_test(
        codes_train, factors_train, codes_test, factors_test
    )
    if codes_train.shape[1] < 2:
        raise ValueError("SAP needs at least 2 latents (it is a gap between the top two)")
    scores = sap_score_matrix(
        codes_train, factors_train, codes_test, factors_test,
        continuous_factors=continuous_factors,
    )  # fmt: skip
    top = np.sort(scores, axis=0)
    return {"sap": float(np.mean(top[-1] - top[-2]))}
