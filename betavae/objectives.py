"""The β-VAE and capacity-controlled objectives, per-latent KL and the capacity schedule.

All losses are in nats per image: summed over pixels / latents, averaged over the batch, so
β, γ and C mean what Higgins et al. (2017) and Burgess et al. (2017) mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """−log p(x | z) under independent Bernoullis: BCE with logits, summed over pixels.

    ``logits`` and ``x`` are ``[B, ...]``; returns the batch mean, a scalar.
    """
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="none")
    return per_pixel.flatten(1).sum(1).mean()


def gaussian_nll(logits: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """−log p(x | z) under N(sigmoid(logits), σ²) per pixel, summed over pixels (batch mean).

    Includes the normalising constant, so it is a true NLL in nats.
    """
    mean = torch.sigmoid(logits.float())
    sq = ((x.float() - mean) ** 2).flatten(1).sum(1) / (2 * sigma**2)
    const = x[0].numel() * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    return (sq + const).mean()


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)) of each latent, ``0.5·(μ² + σ² − log σ² − 1)``, batch mean → ``[d]``."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).mean(0)


def capacity(step: int, capacity_min: float, capacity_max: float, anneal_steps: int) -> float:
    """Target KL C(step) in nats (Burgess et al. 2017, eq. 8).

    Linear from ``capacity_min`` at step 0 to ``capacity_max`` at ``anneal_steps``, constant
    after; ``anneal_steps == 0`` means ``capacity_max`` from the start. A pure function of the
    step: evaluation or a restore never shifts it.
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if anneal_steps <= 0:
        return float(capacity_max)
    fraction = min(step / anneal_steps, 1.0)
    return float(capacity_min + (capacity_max - capacity_min) * fraction)


def beta_objective(recon_nll: torch.Tensor, kl: torch.Tensor, beta: float) -> torch.Tensor:
    """Higgins et al. 2017, eq. 4: ``recon + β·KL``."""
    return recon_nll + beta * kl


def capacity_objective(
    recon_nll: torch.Tensor, kl: torch.Tensor, gamma: float, target: float
) -> torch.Tensor:
    """Burgess et al. 2017, eq. 8: ``recon + γ·|KL − C|``."""
    return recon_nll + gamma * (kl - target).abs()
