"""Sampling metrics and evaluate(): the β-VAE and FactorVAE metrics, the code cache, keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from betavae.data import GroundTruthDataset
from betavae.metrics import (
    METRICS,
    PRIMARY_KEY,
    CodeCache,
    MetricSettings,
    beta_vae_score,
    evaluate,
    factor_vae_score,
    sample_codes,
)

SMALL = MetricSettings(num_train=600, num_test=300, batch_size=16, num_variance_estimate=600)


class Toy(GroundTruthDataset):
    """A constant colour factor plus three varying ones; the image spells its factors out."""

    name = "toy"
    factor_names = ("color", "a", "b", "c")
    factor_sizes = (1, 3, 4, 5)
    num_channels = 1

    def storage(self) -> np.ndarray:
        return self.index_to_classes(np.arange(len(self))).astype(np.uint8)

    def decode(self, rows: torch.Tensor, generator=None) -> torch.Tensor:
        images = torch.zeros(rows.shape[0], 1, 64, 64)
        images[:, 0, 0, :4] = rows.float() / torch.tensor(self.factor_sizes).float()
        return images


class Counting:
    """An encoder that reads the factors off the image, counting images it encodes."""

    def __init__(self, transform=lambda z: z):
        self.transform, self.images = transform, 0

    def __call__(self, images):
        images = torch.as_tensor(images)
        self.images += len(images)
        return self.transform(images[:, 0, 0, 1:4].numpy().astype(np.float64))


def _noise(rng):
    return lambda z: rng.normal(size=z.shape)


def test_the_cache_encodes_each_image_once():
    toy, encoder = Toy(), Counting()
    cache = CodeCache(toy, encoder)
    rng = np.random.default_rng(0)
    classes = toy.sample_factors(500, rng)
    first = cache.codes(classes, rng)
    assert encoder.images == len(np.unique(toy.classes_to_index(classes))) <= len(toy)
    again = cache.codes(classes[::-1], rng)
    np.testing.assert_array_equal(again, first[::-1])
    assert encoder.images == cache.encoded <= len(toy)


def test_sample_codes_scores_only_varying_factors():
    codes, factors = sample_codes(Toy(), Counting(), 200, np.random.default_rng(0))
    assert codes.shape == (200, 3) and factors.shape == (200, 3)
    np.testing.assert_allclose(codes, factors / np.array([3, 4, 5]), atol=1e-6)


@pytest.mark.parametrize("score", [beta_vae_score, factor_vae_score])
def test_a_perfect_representation_scores_high(score):
    result = score(
        Toy(), Counting(), np.random.default_rng(0), batch_size=16, num_train=500, num_eval=300
    )
    assert result["eval_accuracy"] >= 0.9 and result["train_accuracy"] >= 0.9


def test_duplicated_latents_keep_factor_vae_high():
    duplicated = Counting(lambda z: np.c_[z, z])
    result = factor_vae_score(
        Toy(), duplicated, np.random.default_rng(0), batch_size=16, num_train=500, num_eval=300
    )
    assert result["eval_accuracy"] >= 0.9


def test_a_constant_representation_scores_at_chance_or_zero():
    constant = Counting(lambda z: np.zeros_like(z))
    rng = np.random.default_rng(0)
    fv = factor_vae_score(Toy(), constant, rng, batch_size=16, num_train=500, num_eval=300)
    assert fv == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    bv = beta_vae_score(Toy(), constant, rng, batch_size=16, num_train=500, num_eval=3000)
    assert bv["eval_accuracy"] <= 1 / 3 + 0.03  # chance level with three varying factors


class FreshToy(Toy):
    """Toy whose every observation is drawn anew, so codes are not cached per image."""

    deterministic = False


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("score", [beta_vae_score, factor_vae_score])
def test_noise_scores_at_chance(score, seed):
    """Fresh noise for every observation: 1/3 with three varying factors (1,000 evaluation
    points: a standard error of 0.015)."""
    rng = np.random.default_rng(seed)
    result = score(
        FreshToy(), Counting(_noise(rng)), rng, batch_size=16, num_train=500, num_eval=1000
    )
    assert result["eval_accuracy"] == pytest.approx(1 / 3, abs=0.06)


def test_a_factor_left_out_costs_factor_vae_a_third_but_not_the_beta_vae_metric():
    """Codes [a, c] without factor b: FactorVAE's majority vote can never name b (fixing it
    leaves no dimension of low variance, so its votes split and lose), so its accuracy is
    2/3; the β-VAE metric's linear classifier recognises b as "neither dimension still",
    so it stays near 1 (a known weakness of that metric)."""
    rng = np.random.default_rng(0)
    left_out = Counting(lambda z: np.c_[z[:, 0], z[:, 2]])
    fv = factor_vae_score(Toy(), left_out, rng, batch_size=16, num_train=500, num_eval=1000)
    bv = beta_vae_score(Toy(), left_out, rng, batch_size=16, num_train=500, num_eval=1000)
    assert fv["eval_accuracy"] == pytest.approx(2 / 3, abs=0.03)
    assert fv["num_active_dims"] == 2 and bv["eval_accuracy"] > 0.95


def test_two_factors_rotated_together_cost_factor_vae_a_third():
    """Codes [a + b, a − b, c] (a and b scaled to nearly equal variance): fixing a or b leaves
    the same scaled variance in both mixed latents, so each of their points votes for either at
    random; whichever factors the two latents are then named for, half of a's and half of b's
    points (or all of one and none of the other) are right: 1/3 + 1/3 · ½ + 1/3 · ½ = 2/3.
    Fixing c still picks its own latent."""
    rng = np.random.default_rng(0)
    rotated = Counting(lambda z: np.c_[z[:, 0] + z[:, 1], z[:, 0] - z[:, 1], z[:, 2]])
    fv = factor_vae_score(Toy(), rotated, rng, batch_size=16, num_train=500, num_eval=1000)
    assert fv["eval_accuracy"] == pytest.approx(2 / 3, abs=0.04)
    assert fv["num_active_dims"] == 3


def test_a_slight_rotation_on_unequal_scales_still_names_each_factor():
    """Codes [10 (cos θ a + sin θ b), −sin θ a + cos θ b, c] at θ = 20°: fixing a leaves the
    first latent sin²θ ≈ 0.12 of its variance and the second cos²θ ≈ 0.88, so a votes for
    the first (and b for the second): accuracy ≈ 1. Only because each latent is scaled by
    its own variance first: unscaled, the first latent's ×10 would send a's and b's votes
    both to the second (2/3)."""
    rng, theta = np.random.default_rng(0), np.deg2rad(20)
    cos, sin = np.cos(theta), np.sin(theta)
    slight = Counting(
        lambda z: np.c_[
            10 * (cos * z[:, 0] + sin * z[:, 1]), -sin * z[:, 0] + cos * z[:, 1], z[:, 2]
        ]
    )
    fv = factor_vae_score(Toy(), slight, rng, batch_size=16, num_train=500, num_eval=1000)
    assert fv["eval_accuracy"] >= 0.95


def test_evaluate_returns_stable_keys_and_is_seeded():
    first = evaluate(Toy(), Counting(), mode=SMALL, seed=3, kl_per_dim=[0.5, 0.0, 2.0])
    per_model = {PRIMARY_KEY[m] for m in METRICS if m in PRIMARY_KEY}  # UDR: across models
    assert per_model <= set(first.scores)
    expected = {
        "metric.beta_vae", "metric.beta_vae.train_accuracy", "metric.factor_vae",
        "metric.factor_vae.train_accuracy", "metric.factor_vae.num_active_dims", "metric.mig",
        "metric.dci.disentanglement", "metric.dci.completeness",
        "metric.dci.informativeness_train", "metric.dci.informativeness_test", "metric.sap",
        "metric.modularity", "metric.explicitness.train", "metric.explicitness.test",
        "metric.unsupervised.gaussian_total_correlation",
        "metric.unsupervised.gaussian_wasserstein_correlation",
        "metric.unsupervised.gaussian_wasserstein_correlation_norm",
        "metric.unsupervised.mutual_info_score", "kl", "active_latents",
    }  # fmt: skip
    assert set(first.scores) == expected
    assert first.scores["active_latents"] == 2 and first.scores["kl"] == 2.5
    assert all(isinstance(v, float) for v in first.scores.values())
    assert {"torch", "numpy", "scikit-learn"} <= set(first.versions)
    assert first.settings["num_train"] == 600 and first.settings["seed"] == 3
    assert first.images_encoded <= len(Toy())
    assert first.scores["metric.mig"] >= 0.9 and first.scores["metric.dci.disentanglement"] >= 0.9
    again = evaluate(Toy(), Counting(), mode=SMALL, seed=3, kl_per_dim=[0.5, 0.0, 2.0])
    assert again.scores == first.scores


def test_evaluate_runs_only_the_chosen_metrics():
    result = evaluate(Toy(), Counting(), metrics=["mig"], mode=SMALL)
    assert set(result.scores) == {"metric.mig"} and set(result.seconds) >= {"mig"}
    with pytest.raises(ValueError, match="unknown metric 'beta'"):
        evaluate(Toy(), Counting(), metrics=["beta"])
    with pytest.raises(ValueError, match="mode must be"):
        evaluate(Toy(), Counting(), mode="quick")  # type: ignore[arg-type]


def test_sampling_sizes_are_checked():
    with pytest.raises(ValueError, match="num_train must be a positive integer"):
        beta_vae_score(Toy(), Counting(), np.random.default_rng(0), num_train=0)
    with pytest.raises(ValueError, match="batch_size must be >= 2"):
        factor_vae_score(Toy(), Counting(), np.random.default_rng(0), batch_size=1)


def test_fast_mode_scores_the_same_keys_close_to_reference():
    fast = evaluate(Toy(), Counting(), mode="fast", seed=0)
    small_reference = evaluate(Toy(), Counting(), mode=SMALL, seed=0)
    assert set(fast.scores) == set(small_reference.scores) - {"kl", "active_latents"}
    assert fast.settings["predictor"] == "gbt-fast" and fast.settings["classifier_points"] == 1000
    for key in ("metric.mig", "metric.dci.disentanglement", "metric.beta_vae", "metric.factor_vae"):
        assert fast.scores[key] == pytest.approx(small_reference.scores[key], abs=0.05), key


def _entangled(mixing: list[list[float]], noise: float):
    """An encoder whose codes mix the factors and add noise fixed per image (each image is
    encoded once: the dataset is deterministic), so every score lies well inside (0, 1)."""
    matrix = np.array(mixing)

    def transform(z):
        draw = np.random.default_rng(np.round(z * 1000).astype(np.int64).sum(axis=1)[:, None])
        return z @ matrix + noise * draw.normal(size=z.shape)

    return transform


@pytest.mark.parametrize(
    "mixing, noise",
    [
        ([[1.0, 0.6, 0.0], [0.0, 1.0, 0.7], [0.5, 0.0, 1.0]], 0.15),  # mildly entangled
        ([[1.0, 0.8, 0.3], [0.2, 1.0, 0.8], [0.7, 0.3, 1.0]], 0.6),  # entangled and noisy
    ],
)
def test_fast_mode_agrees_with_reference_on_an_imperfect_representation(mixing, noise):
    """The mode sweeps score with, against disentanglement_lib's sample sizes, within the 0.034
    docs/METRICS.md states, on codes where the scores are not all ≈ 1 (a perfect code leaves
    every mode at 1 and cannot tell them apart)."""
    encoder = _entangled(mixing, noise)
    fast = evaluate(Toy(), Counting(encoder), mode="fast", seed=0).scores
    reference = evaluate(Toy(), Counting(encoder), mode="reference", seed=0).scores
    keys = ("metric.mig", "metric.dci.disentanglement", "metric.beta_vae", "metric.factor_vae")
    assert min(reference[k] for k in keys) < 0.9  # not a perfect code
    for key in keys:
        assert fast[key] == pytest.approx(reference[key], abs=0.034), key


def test_smoke_mode_still_tells_a_disentangled_code_from_noise():
    """The smoke preset's mode samples too few points for its scores to be compared with the
    others (docs/METRICS.md), but it must still rank: the factors themselves score near the top
    and fresh noise near chance (β-VAE, FactorVAE) or zero (MIG, DCI) on every score."""
    perfect = evaluate(Toy(), Counting(), mode="smoke", seed=0).scores
    noise = evaluate(FreshToy(), Counting(_noise(np.random.default_rng(0))), mode="smoke", seed=0)
    keys = ("metric.mig", "metric.dci.disentanglement", "metric.beta_vae", "metric.factor_vae")
    for key in keys:
        assert perfect[key] > 0.8, (key, perfect[key])
        assert noise.scores[key] < 0.5, (key, noise.scores[key])
