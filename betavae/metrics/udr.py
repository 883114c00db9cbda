"""UDR, Unsupervised Disentanglement Ranking (Duan et al., ICLR 2020), with disentanglement_lib's
definition and defaults (``evaluation/udr/metrics/udr.py``).

UDR ranks models without ground-truth factors: models trained alike tend to agree, up to
permutation and sign, when they disentangle and to differ when they do not. Each model's codes
are standardised and its inactive latents (KL ≤ ``kl_threshold``, default 0.01) set to zero. For
each ordered pair (source, target) a similarity matrix R is built, R[p, q] relating latent p of
the source to latent q of the target: either |Spearman ρ| or the absolute weights of a Lasso
(α = 0.1) that regresses the target's codes on the source's. Restricted to both models' active
latents, the pair scores the mean over columns of max²/sum, averaged with the same over rows (an
undefined ratio counts as 0). A model's UDR is the median of its scores as target, one per other
model.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso
from sklearn.preprocessing import StandardScaler

from betavae.data.base import ImageDataset
from betavae.metrics._checks import check_codes

Correlation = Literal["lasso", "spearman"]
CORRELATIONS = ("lasso", "spearman")


def relative_strength(similarity: np.ndarray) -> float:
    """Mean of max²/sum over the columns, averaged with the same over the rows; a NaN ratio (an
    all-zero line, or a NaN entry in it) counts as 0."""

    def mean_ratio(axis: int) -> float:
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = similarity.max(axis=axis) ** 2 / similarity.sum(axis=axis)
        return float(np.mean(np.nan_to_num(ratio, nan=0.0)))

    return (mean_ratio(0) + mean_ratio(1)) / 2


def spearman_similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """|Spearman ρ| between every source latent (rows) and target latent (columns); NaN where a
    latent is constant."""
    ranks_source = rankdata(source, axis=0)
    ranks_target = rankdata(target, axis=0)
    ranks_source -= ranks_source.mean(axis=0)
    ranks_target -= ranks_target.mean(axis=0)
    norms = np.outer(np.linalg.norm(ranks_source, axis=0), np.linalg.norm(ranks_target, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(ranks_source.T @ ranks_target / norms)


def lasso_similarity(source: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    """|weight| of source latent p (rows) in the Lasso fit of target latent q (columns)."""
    with warnings.catch_warnings():  # the reference runs the solver's default iterations
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = Lasso(alpha=alpha).fit(source, target)
    weights = np.reshape(fit.coef_, (target.shape[1], source.shape[1]))
    return np.abs(weights).T


def _check_models(
    codes: Sequence[np.ndarray], kl: Sequence[np.ndarray], kl_threshold: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The codes as float64 arrays and each model's active-latent mask."""
    if len(codes) < 2:
        raise ValueError(f"codes must hold at least 2 models for UDR, got {len(codes)}")
    if len(kl) != len(codes):
        raise ValueError(f"kl has {len(kl)} vectors but codes has {len(codes)} models")
    checked, active = [], []
    for m, (model_codes, model_kl) in enumerate(zip(codes, kl, strict=True)):
        model_codes = check_codes(model_codes, f"codes[{m}]")
        n_points, n_latents = model_codes.shape
        first_n_points = checked[0].shape[0] if checked else n_points
        if n_points != first_n_points:
            raise ValueError(
                f"codes[{m}] has {n_points} points but codes[0] has {first_n_points}; "
                "every model must encode the same inputs"
            )
        if n_points < 2:
            raise ValueError(f"codes[{m}] has {n_points} points; need at least 2")
        model_kl = np.asarray(model_kl, dtype=np.float64)
        if model_kl.shape != (n_latents,):
            raise ValueError(
                f"kl[{m}] has shape {model_kl.shape} but codes[{m}] has {n_latents} latents; "
                f"it must be a vector of length {n_latents}"
            )
        if not np.all(np.isfinite(model_kl)):
            raise ValueError(f"kl[{m}] has NaN or infinite values")
        if not np.any(model_kl > kl_threshold):
            raise ValueError(
                f"kl[{m}] has no latent above kl_threshold={kl_threshold}; "
                "every model needs at least one active latent"
            )
        checked.append(model_codes)
        active.append(model_kl > kl_threshold)
    return checked, active


def udr(
    codes: Sequence[np.ndarray],
    kl: Sequence[np.ndarray],
    *,
    correlation: Correlation = "lasso",
    kl_threshold: float = 0.01,
    lasso_alpha: float = 0.1,
) -> list[float]:
    """One UDR score per model, in order.

    ``codes``: one ``[N, d_m]`` array per model (posterior means of the same N inputs); ``kl``:
    each model's per-latent KL ``[d_m]``, averaged over inputs. Latents with KL ≤
    ``kl_threshold`` are zeroed and left out of the scores. Widths may differ between models
    (disentanglement_lib requires them equal). At least two models.
    """
    if correlation not in CORRELATIONS:
        raise ValueError(f"correlation must be one of {CORRELATIONS}, got {correlation!r}")
    if not lasso_alpha > 0:
        raise ValueError(f"lasso_alpha must be > 0, got {lasso_alpha!r}")
    codes, active = _check_models(codes, kl, kl_threshold)
    prepared = [
        StandardScaler().fit_transform(model_codes) * mask
        for model_codes, mask in zip(codes, active, strict=True)
    ]

    n_models = len(codes)
    pair_score = np.full((n_models, n_models), np.nan)  # [source, target]
    for source in range(n_models):
        for target in range(n_models):
            if source == target:
                continue
            if correlation == "lasso":
                similarity = lasso_similarity(prepared[source], prepared[target], lasso_alpha)
            else:
                similarity = spearman_similarity(prepared[source], prepared[target])
            between_active = similarity[np.ix_(active[source], active[target])]
            pair_score[source, target] = relative_strength(between_active)

    return [float(np.median(np.delete(pair_score[:, model], model))) for model in range(n_models)]


#: disentanglement_lib's ``num_data_points``: every model of a setting encodes these inputs.
UDR_POINTS = 1000


def udr_inputs(dataset: ImageDataset, num_points: int = UDR_POINTS, seed: int = 0) -> np.ndarray:
    """The images every model of a sweep encodes for UDR, float ``[n, C, 64, 64]``: the same
    for every model on the same dataset (fixed ``seed``). A dataset with factors gives
    ``num_points`` images of uniformly drawn factors (as disentanglement_lib samples them); one
    without gives its held-out rows (all rows when fewer than ``num_points`` are held out), at
    most ``num_points`` of them."""
    import torch

    rng = np.random.default_rng(seed)
    if dataset.has_factors:
        return dataset.images(dataset.sample_factors(num_points, rng), rng)
    rows = np.arange(dataset.train_rows, len(dataset))
    if len(rows) < num_points:
        rows = np.arange(len(dataset))
    rows = np.sort(rng.permutation(rows)[:num_points])
    stored = torch.from_numpy(np.ascontiguousarray(dataset.storage()[rows]))
    return dataset.decode(stored).float().numpy()


def setting_udr(
    codes: Sequence[np.ndarray],
    kl: Sequence[np.ndarray],
    *,
    correlation: Correlation = "lasso",
    kl_threshold: float = 0.01,
) -> list[float | None]:
    """UDR of the models of one setting (its seeds), in order, for a sweep: a model with no
    active latent (collapsed, KL ≤ ``kl_threshold`` everywhere) scores 0 and is left out of
    the others' comparisons (disentanglement_lib fails on it); None for every model while
    fewer than two models have an active latent."""
    alive = [m for m, model_kl in enumerate(kl) if np.any(np.asarray(model_kl) > kl_threshold)]
    scores: list[float | None] = [0.0] * len(codes)
    if len(alive) < 2:
        return [None if m in alive else 0.0 for m in range(len(codes))]
    among = udr(
        [codes[m] for m in alive],
        [kl[m] for m in alive],
        correlation=correlation,
        kl_threshold=kl_threshold,
    )
    for m, score in zip(alive, among, strict=True):
        scores[m] = score
    return scores
