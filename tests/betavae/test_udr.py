"""UDR against numbers from disentanglement_lib's own ``compute_udr_sklearn`` on fixed arrays
(tests/betavae/fixtures/udr_reference.json), its behaviour, and its input checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from betavae.metrics import udr

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "udr_reference.json").read_text())


def make_models(case: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Codes ``[N, d]`` and KL ``[d]`` per model, following the recipe in the reference file.

    Each model holds ``n_shared`` informative latents (the common factors when ``shared``, else
    its own draws; optionally the first two rotated by a random angle) plus noise, and
    ``d - n_shared`` low-KL latents (noise, or a noisy copy of its first informative latent),
    then its columns are permuted, sign-flipped and rescaled.
    """
    rng = np.random.default_rng(case["seed"])
    n, d, n_shared, noise = case["n_points"], case["n_latents"], case["n_shared"], case["noise"]
    common = rng.standard_normal((n, n_shared))
    codes, kl = [], []
    for _ in range(case["n_models"]):
        signal = common.copy() if case["shared"] else rng.standard_normal((n, n_shared))
        if case["rotate"]:
            theta = rng.uniform(0.0, np.pi / 2)
            rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
            signal[:, :2] = signal[:, :2] @ rotation
        signal = signal + noise * rng.standard_normal((n, n_shared))
        if case["low_kl"] == "copy":
            extra = signal[:, :1] + noise * rng.standard_normal((n, d - n_shared))
        else:
            extra = rng.standard_normal((n, d - n_shared))
        model_kl = np.concatenate(
            [rng.uniform(*case["kl_active"], n_shared), rng.uniform(*case["kl_low"], d - n_shared)]
        )
        permutation = rng.permutation(d)
        signs = rng.choice([-1.0, 1.0], size=d)
        scales = rng.uniform(0.5, 2.0, size=d)
        codes.append(np.concatenate([signal, extra], axis=1)[:, permutation] * signs * scales)
        kl.append(model_kl[permutation])
    return codes, kl


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda case: case["name"])
def test_matches_disentanglement_lib(case: dict, correlation: str) -> None:
    codes, kl = make_models(case)
    scores = udr(codes, kl, correlation=correlation)
    np.testing.assert_allclose(scores, case["model_scores"][correlation], rtol=0, atol=1e-9)


def _case(name: str) -> dict:
    return next(case for case in REFERENCE["cases"] if case["name"] == name)


@pytest.mark.parametrize("correlation", ["lasso", "spearman"])
def test_permuted_sign_flipped_models_score_high_and_random_ones_low(correlation: str) -> None:
    alike = udr(*make_models({**_case("permuted"), "seed": 101}), correlation=correlation)
    unrelated = udr(*make_models({**_case("independent"), "seed": 102}), correlation=correlation)
    # a Lasso with α = 0.1 shrinks a unit weight on standardised codes to about 0.9
    assert min(alike) > (0.85 if correlation == "lasso" else 0.75)
    assert max(unrelated) < 0.5
    assert min(alike) - max(unrelated) > 0.4


def _models(n_models: int = 2, n: int = 50, d: int = 3) -> tuple[list, list]:
    rng = np.random.default_rng(0)
    return [rng.standard_normal((n, d)) for _ in range(n_models)], [np.ones(d)] * n_models


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda codes, kl: (codes[:1], kl[:1]), "codes"),
        (lambda codes, kl: ([codes[0], codes[1][:40]], kl), r"codes\[1\]"),
        (lambda codes, kl: (codes, [kl[0], np.ones(4)]), r"kl\[1\]"),
        (lambda codes, kl: (codes, kl[:1]), "kl"),
        (lambda codes, kl: (codes, [kl[0], np.zeros(3)]), r"kl\[1\].*kl_threshold"),
    ],
    ids=["one_model", "mismatched_n", "kl_length", "kl_count", "no_active_latent"],
)
def test_bad_inputs_raise_naming_the_field(mutate, field: str) -> None:
    codes, kl = mutate(*_models())
    with pytest.raises(ValueError, match=field):
        udr(codes, kl)


def test_unknown_correlation_is_named() -> None:
    with pytest.raises(ValueError, match=r"correlation must be one of .*'pearson'"):
        udr(*_models(), correlation="pearson")


def test_udr_inputs_on_a_factor_dataset_are_fixed_images_of_uniform_factors() -> None:
    """Every model of a sweep on dSprites encodes the same images (one seed), drawn from the
    whole factor grid: all three shapes and the scales' range, not one corner of it."""
    from betavae.data import load_dataset
    from betavae.metrics import udr_inputs

    dsprites = load_dataset("dsprites")
    first, again = udr_inputs(dsprites, 500), udr_inputs(dsprites, 500)
    assert first.shape == (500, 1, 64, 64) and np.array_equal(first, again)
    assert not np.array_equal(first, udr_inputs(dsprites, 500, seed=1))
    assert set(np.unique(first)) <= {0.0, 1.0} and 0.01 < first.mean() < 0.2
    sprites = first.reshape(500, -1).sum(axis=1)  # pixels lit: shape and scale set it
    assert sprites.min() > 0 and sprites.max() > 2 * sprites.min()  # sizes span the grid
