from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from betavae.objectives import (
    bernoulli_nll,
    beta_objective,
    capacity,
    capacity_objective,
    gaussian_nll,
    kl_per_dim,
)


def test_kl_of_the_prior_is_zero():
    mu, logvar = torch.zeros(8, 5), torch.zeros(8, 5)
    assert torch.equal(kl_per_dim(mu, logvar), torch.zeros(5))


def test_kl_matches_the_closed_form_per_latent():
    mu = torch.tensor([[1.0, 0.0], [3.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)], [0.0, math.log(4.0)]])
    # latent 0: 0.5·mean(μ²) = 0.5·5; latent 1: 0.5·(4 − ln 4 − 1)
    expected = torch.tensor([2.5, 0.5 * (3 - math.log(4.0))])
    torch.testing.assert_close(kl_per_dim(mu, logvar), expected)
    assert torch.all(kl_per_dim(torch.randn(64, 7), torch.randn(64, 7)) >= 0)


def test_bernoulli_nll_sums_over_pixels_and_averages_over_the_batch():
    logits = torch.randn(4, 1, 64, 64)
    x = (torch.rand(4, 1, 64, 64) > 0.5).float()
    per_image = [
        F.binary_cross_entropy_with_logits(logits[i], x[i], reduction="sum") for i in range(4)
    ]
    torch.testing.assert_close(bernoulli_nll(logits, x), torch.stack(per_image).mean())
    # an uninformative model costs ln 2 nats per pixel
    torch.testing.assert_close(
        bernoulli_nll(torch.zeros(2, 1, 64, 64), x[:2]), torch.tensor(4096 * math.log(2))
    )


def test_gaussian_nll_is_a_normalised_log_likelihood():
    x = torch.rand(3, 3, 64, 64)
    logits = torch.randn(3, 3, 64, 64)
    dist = torch.distributions.Normal(torch.sigmoid(logits), 0.3)
    expected = -dist.log_prob(x).flatten(1).sum(1).mean()
    torch.testing.assert_close(gaussian_nll(logits, x, 0.3), expected)


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 2.0), (50, 14.0), (100, 26.0), (101, 26.0), (10**9, 26.0)],
)
def test_capacity_is_linear_then_constant(step, expected):
    assert capacity(step, 2.0, 26.0, 100) == pytest.approx(expected)


def test_capacity_without_anneal_is_the_maximum_and_steps_are_checked():
    assert capacity(0, 0.0, 25.0, 0) == 25.0
    with pytest.raises(ValueError, match="step must be >= 0"):
        capacity(-1, 0.0, 25.0, 10)


def test_the_two_objectives():
    recon, kl = torch.tensor(100.0), torch.tensor(7.0)
    assert beta_objective(recon, kl, 4.0).item() == 128.0
    assert beta_objective(recon, kl, 1.0).item() == 107.0  # β = 1 is the plain ELBO
    assert capacity_objective(recon, kl, 1000.0, 5.0).item() == 2100.0
    assert capacity_objective(recon, kl, 1000.0, 9.0).item() == 2100.0  # |KL − C| is symmetric
    assert capacity_objective(recon, kl, 1000.0, 7.0).item() == 100.0
