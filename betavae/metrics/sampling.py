"""Sampling-based metrics over a ground-truth dataset and an encoder.

``encode`` maps float images ``[B, C, H, W]`` (numpy or torch) to posterior means ``[B, d]``.
A :class:`CodeCache` encodes each image of a deterministic dataset at most once, so the
metrics together cost one encoding pass over the images they touch. Only the factors that vary
(``dataset.varying_factors``) are scored; dSprites' constant colour is left out.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from betavae.data import GroundTruthDataset
from betavae.metrics._checks import DEFAULT_LOGISTIC, Logistic, fit_logistic

Encode = Callable[[np.ndarray | torch.Tensor], np.ndarray]


class CodeCache:
    """Codes of images by factor classes, encoding each distinct image once when possible."""

    def __init__(self, dataset: GroundTruthDataset, encode: Encode, batch_size: int = 4096):
        self.dataset, self.encode, self.batch_size = dataset, encode, batch_size
        self._table: np.ndarray | None = None
        self._filled = np.zeros(len(dataset), dtype=bool)
        self.encoded = 0  # images passed through the encoder so far

    def _encode_images(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        out = [
            np.asarray(self.encode(images[i : i + self.batch_size]), dtype=np.float64)
            for i in range(0, len(images), self.batch_size)
        ]
        self.encoded += len(images)
        return np.concatenate(out)

    def codes(self, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Codes ``[n, d]`` of the images with the given ``[n, k]`` factor classes."""
        if not self.dataset.deterministic:  # fresh noise per observation: nothing to reuse
            return self._encode_images(self.dataset.images(classes, rng))
        index = self.dataset.classes_to_index(classes)
        missing = np.unique(index[~self._filled[index]])
        storage = self.dataset.storage()
        for start in range(0, len(missing), self.batch_size):
            rows = missing[start : start + self.batch_size]
            images = self.dataset.decode(torch.from_numpy(storage[rows]))
            codes = self._encode_images(images)
            if self._table is None:
                self._table = np.zeros((len(self.dataset), codes.shape[1]), dtype=np.float64)
            self._table[rows] = codes
            self._filled[rows] = True
        assert self._table is not None
        return self._table[index]


def as_cache(dataset: GroundTruthDataset, encode: Encode | CodeCache) -> CodeCache:
    """``encode`` itself if it is already a cache (shared across metrics), else a new one."""
    return encode if isinstance(encode, CodeCache) else CodeCache(dataset, encode)


def sample_codes(
    dataset: GroundTruthDataset, encode: Encode | CodeCache, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random images' codes ``[n, d]`` and their varying factors' classes ``[n, k]``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    classes = dataset.sample_factors(n, rng)
    codes = as_cache(dataset, encode).codes(classes, rng)
    return codes, classes[:, list(dataset.varying_factors)]


def _fixed_factor_batches(
    dataset: GroundTruthDataset, num_points: int, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per point, a factor index y (among varying ones) and ``batch_size`` random classes."""
    varying = np.asarray(dataset.varying_factors)
    y = rng.integers(len(varying), size=num_points)
    classes = dataset.sample_factors(num_points * batch_size, rng)
    return y, classes.reshape(num_points, batch_size, -1)


def beta_vae_score(
    dataset: GroundTruthDataset,
    encode: Encode | CodeCache,
    rng: np.random.Generator,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    logistic: Logistic = DEFAULT_LOGISTIC,
) -> dict[str, float]:
    """The β-VAE metric (Higgins et al. 2017, section 3).

    A point: choose a factor y; draw ``batch_size`` pairs of images that share y's value (the
    other factors random); feature = mean over the pairs of |z₁ − z₂|. A logistic regression
    (``logistic`` protocol, see ``fit_logistic``) predicts y from the feature. Returns
    ``train_accuracy`` and ``eval_accuracy`` (the score).
    """
    _check_sizes(batch_size=batch_size, num_train=num_train, num_eval=num_eval)
    cache, varying = as_cache(dataset, encode), np.asarray(dataset.varying_factors)

    def points(n: int) -> tuple[np.ndarray, np.ndarray]:
        y, first = _fixed_factor_batches(dataset, n, batch_size, rng)
        second = dataset.sample_factors(n * batch_size, rng).reshape(first.shape)
        column = varying[y]
        second[np.arange(n), :, column] = first[np.arange(n), :, column]
        z1 = cache.codes(first.reshape(-1, first.shape[-1]), rng).reshape(n, batch_size, -1)
        z2 = cache.codes(second.reshape(-1, first.shape[-1]), rng).reshape(n, batch_size, -1)
        return np.mean(np.abs(z1 - z2), axis=1), y

    x_train, y_train = points(num_train)
    model = fit_logistic(x_train, y_train, logistic, random_state=int(rng.integers(2**31 - 1)))
    x_eval, y_eval = points(num_eval)
    return {
        "train_accuracy": float(np.mean(model.predict(x_train) == y_train)),
        "eval_accuracy": float(np.mean(model.predict(x_eval) == y_eval)),
    }


def factor_vae_score(
    dataset: GroundTruthDataset,
    encode: Encode | CodeCache,
    rng: np.random.Generator,
    *,
    batch_size: int = 64,
    num_train: int = 10_000,
    num_eval: int = 5_000,
    num_variance_estimate: int = 10_000,
    prune_threshold: float = 0.05,
) -> dict[str, float]:
    """The FactorVAE metric (Kim & Mnih 2018, section 4).

    Latents are scaled by their std over ``num_variance_estimate`` random images; latents with
    std below ``prune_threshold`` are dropped. A point: fix one factor over a batch, take the
    latent with the least scaled variance; a majority vote maps latents to factors. Returns
    ``train_accuracy``, ``eval_accuracy`` (the score) and ``num_active_dims``.
    """
    _check_sizes(
        batch_size=batch_size, num_train=num_train, num_eval=num_eval,
        num_variance_estimate=num_variance_estimate,
    )  # fmt: skip
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2 (a variance), got {batch_size}")
    cache, varying = as_cache(dataset, encode), np.asarray(dataset.varying_factors)
    codes = cache.codes(dataset.sample_factors(num_variance_estimate, rng), rng)
    global_var = np.var(codes, axis=0, ddof=1)
    active = np.flatnonzero(np.sqrt(global_var) >= prune_threshold)
    if active.size == 0:
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

    def votes(n: int) -> np.ndarray:
        y, classes = _fixed_factor_batches(dataset, n, batch_size, rng)
        column = varying[y]
        classes[np.arange(n), :, column] = classes[np.arange(n), 0, column][:, None]
        z = cache.codes(classes.reshape(-1, classes.shape[-1]), rng).reshape(n, batch_size, -1)
        local = np.var(z[:, :, active], axis=1, ddof=1) / global_var[active]
        table = np.zeros((len(varying), codes.shape[1]), dtype=np.int64)
        np.add.at(table, (y, active[np.argmin(local, axis=1)]), 1)
        return table

    train_votes = votes(num_train)
    classifier = np.argmax(train_votes, axis=0)  # latent → factor
    eval_votes = votes(num_eval)
    latents = np.arange(train_votes.shape[1])
    return {
        "train_accuracy": float(train_votes[classifier, latents].sum() / train_votes.sum()),
        "eval_accuracy": float(eval_votes[classifier, latents].sum() / eval_votes.sum()),
        "num_active_dims": int(active.size),
    }


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
