"""Shared by the array-level metrics: input checks (one clear ValueError per problem), the
per-factor fan-out of classifier fits and the logistic-regression protocols."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import numpy as np

T = TypeVar("T")
#: ``lbfgs``: today's scikit-learn default (multinomial, lbfgs, 100 iterations).
#: ``liblinear``: the default of the scikit-learn versions disentanglement_lib's published
#: numbers came from (one-vs-rest, each class by liblinear; C = 1, L2, intercept penalised).
Logistic = Literal["lbfgs", "liblinear"]
LOGISTIC_PROTOCOLS = ("lbfgs", "liblinear")
#: The protocol every score uses unless told otherwise: the published one. On three trained
#: models the two moved explicitness by up to 0.02 (docs/REPRODUCTIONS.md).
DEFAULT_LOGISTIC: Logistic = "liblinear"


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    protocol: Logistic = DEFAULT_LOGISTIC,
    random_state: int | None = None,
) -> Any:
    """A fitted logistic regression under ``protocol`` (``predict``, ``predict_proba``,
    ``classes_``). Convergence warnings are silenced: the references run the solvers' default
    iterations as they come."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if protocol == "lbfgs":
        model = LogisticRegression(random_state=random_state)
    elif protocol == "liblinear":
        binary = LogisticRegression(solver="liblinear", random_state=random_state)
        model = binary if np.unique(y).size <= 2 else OneVsRestClassifier(binary)
    else:
        raise ValueError(f"logistic must be one of {LOGISTIC_PROTOCOLS}, got {protocol!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(x, y)


def check_codes(codes: np.ndarray, name: str = "codes", min_latents: int = 1) -> np.ndarray:
    """``codes`` as a finite float64 ``[N, d]`` array."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, d] array, got shape {codes.shape}")
    if not (np.issubdtype(codes.dtype, np.floating) or np.issubdtype(codes.dtype, np.integer)):
        raise ValueError(f"{name} must be numeric, got dtype {codes.dtype}")
    codes = codes.astype(np.float64)
    if not np.all(np.isfinite(codes)):
        bad = int(np.sum(~np.isfinite(codes)))
        raise ValueError(f"{name} has {bad} NaN or infinite values; codes must be finite")
    if codes.shape[1] < min_latents:
        raise ValueError(f"{name} has {codes.shape[1]} latents; need at least {min_latents}")
    return codes


def check_factors(factors: np.ndarray, name: str = "factors") -> np.ndarray:
    """``factors`` as an int64 ``[N, k]`` array of class labels, each factor varying."""
    factors = np.asarray(factors)
    if factors.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [N, k] array of classes, got shape {factors.shape}")
    if np.issubdtype(factors.dtype, np.floating):
        if not np.all(np.isfinite(factors)) or not np.all(factors == np.round(factors)):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    elif not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {factors.dtype}")
    factors = factors.astype(np.int64)
    for j in range(factors.shape[1]):
        if np.unique(factors[:, j]).size < 2:
            raise ValueError(
                f"{name}[:, {j}] is constant; drop constant factors before computing metrics"
            )
    return factors


def check_pair(
    codes: np.ndarray,
    factors: np.ndarray,
    *,
    suffix: str = "",
    min_points: int = 2,
    min_latents: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    codes = check_codes(codes, f"codes{suffix}", min_latents)
    factors = check_factors(factors, f"factors{suffix}")
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"codes{suffix} has {codes.shape[0]} points but factors{suffix} has "
            f"{factors.shape[0]}; they must match"
        )
    if codes.shape[0] < min_points:
        raise ValueError(f"codes{suffix} has {codes.shape[0]} points; need at least {min_points}")
    return codes, factors


def check_train_test(
    codes_train: np.ndarray,
    factors_train: np.ndarray,
    codes_test: np.ndarray,
    factors_test: np.ndarray,
    *,
    min_points: int = 2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    codes_train, factors_train = check_pair(
        codes_train, factors_train, suffix="_train", min_points=min_points
    )
    codes_test = check_codes(codes_test, "codes_test")
    factors_test = np.asarray(factors_test)
    if factors_test.ndim != 2 or not np.issubdtype(factors_test.dtype, np.number):
        raise ValueError(f"factors_test must be a 2-D [N, k] array, got shape {factors_test.shape}")
    factors_test = factors_test.astype(np.int64)
    if codes_test.shape[0] != factors_test.shape[0]:
        raise ValueError(
            f"codes_test has {codes_test.shape[0]} points but factors_test has "
            f"{factors_test.shape[0]}; they must match"
        )
    if codes_test.shape[1] != codes_train.shape[1]:
        raise ValueError(
            f"codes_test has {codes_test.shape[1]} latents but codes_train has "
            f"{codes_train.shape[1]}"
        )
    if factors_test.shape[1] != factors_train.shape[1]:
        raise ValueError(
            f"factors_test has {factors_test.shape[1]} factors but factors_train has "
            f"{factors_train.shape[1]}"
        )
    if codes_test.shape[0] < 1:
        raise ValueError("codes_test has 0 points; need at least 1")
    return codes_train, factors_train, codes_test, factors_test


def map_factors(fn: Callable[[int], T], factors: np.ndarray, n_jobs: int | None = None) -> list[T]:
    """``[fn(j) for j in range(k)]``, one call per factor column, overlapped in threads.

    The per-factor classifiers spend their time in numpy/scikit-learn code that releases the
    GIL. Factors with more classes cost more (one tree per class and stage for DCI), so they
    start first.
    """
    k = factors.shape[1]
    workers = min(k, n_jobs or os.cpu_count() or 1)
    order = sorted(range(k), key=lambda j: -np.unique(factors[:, j]).size)
    if workers == 1:
        done = {j: fn(j) for j in order}
    else:
        with ThreadPoolExecutor(workers) as pool:
            done = dict(zip(order, pool.map(fn, order), strict=True))
    return [done[j] for j in range(k)]
