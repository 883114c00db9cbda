"""Which factor each latent carries, and how much of it, measured through the posterior noise.

Mutual information between *posterior means* and factors is blind to scale: a code whose
means vary by 1e-4 across images while σ ≈ 1 carries nothing a decoder can read, yet its means
still sort the images. So here each latent is read the way the decoder reads it, as a sample
``z = μ + σ·ε``; its information about a factor is the discrete mutual information of ``z``
(20 equal-width bins) with the factor's classes, divided by the factor's entropy (1 = the
latent determines the factor, 0 = independent of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from betavae.metrics.information import (
    discrete_entropy,
    discrete_mutual_info,
    histogram_discretize,
)

#: A latent is *on* (encodes something) above this many nats of mean KL.
SWITCH_ON_NATS = 0.5


def sampled_codes(mu: np.ndarray, logvar: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One posterior sample per image, ``[N, d]``: ``μ + exp(logvar / 2)·ε``."""
    mu, logvar = np.asarray(mu, dtype=np.float64), np.asarray(logvar, dtype=np.float64)
    return mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)


def factor_information(codes: np.ndarray, factors: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """``[d, k]``: MI between each latent (binned) and each factor over the factor's entropy.

    ``codes`` ``[N, d]`` (samples, see the module docstring), ``factors`` ``[N, k]`` classes;
    a factor that does not vary gets 0.
    """
    mi = discrete_mutual_info(histogram_discretize(codes, num_bins), factors)
    entropy = discrete_entropy(factors)
    return np.divide(mi, entropy[None, :], out=np.zeros_like(mi), where=entropy[None, :] > 0)


@dataclass(frozen=True)
class LatentLabel:
    latent: int
    factor: str
    """The factor it carries most information about."""
    information: float
    """That factor's normalised mutual information (0…1)."""
    kl: float
    """The latent's mean KL, nats."""


def label_latents(
    information: np.ndarray,
    kl_per_dim: Sequence[float],
    factor_names: Sequence[str],
    *,
    min_kl: float = SWITCH_ON_NATS,
) -> list[LatentLabel]:
    """The latents whose KL exceeds ``min_kl``, highest KL first, each named by the factor it
    carries most information about (``information`` from :func:`factor_information`, over the
    varying factors named in ``factor_names``)."""
    kl = np.asarray(kl_per_dim, dtype=float)
    labels = []
    for j in np.argsort(-kl):
        if kl[j] <= min_kl:
            break
        f = int(np.argmax(information[j]))
        labels.append(LatentLabel(int(j), factor_names[f], float(information[j, f]), float(kl[j])))
    return labels
