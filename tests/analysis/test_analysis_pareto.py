"""Pareto mask and hypervolume against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis.pareto import hypervolume, pareto_mask


def brute_mask(values, maximize):
    v = np.asarray(values, float) * np.where(maximize, -1.0, 1.0)
    out = []
    for i in range(len(v)):
        dominated = any(
            np.all(v[j] <= v[i]) and np.any(v[j] < v[i]) for j in range(len(v)) if j != i
        )
        out.append(not dominated)
    return np.array(out)


def brute_hv(values, ref, maximize):
    """Inclusion–exclusion over every subset (exact; small sets only)."""
    sign = np.where(maximize, -1.0, 1.0)
    v = np.asarray(values, float) * sign
    r = np.asarray(ref, float) * sign
    v = v[np.all(v < r, axis=1)]
    total = 0.0
    for k in range(1, len(v) + 1):
        for subset in itertools.combinations(range(len(v)), k):
            corner = v[list(subset)].max(axis=0)
            total += (-1) ** (k + 1) * np.prod(r - corner)
    return total


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_mask_matches_brute_force_with_ties_and_duplicates(m):
    rng = np.random.default_rng(m)
    for _ in range(30):
        n = int(rng.integers(1, 25))
        values = rng.integers(0, 4, size=(n, m)).astype(float)  # many ties and duplicates
        maximize = list(rng.integers(0, 2, size=m).astype(bool))
        np.testing.assert_array_equal(pareto_mask(values, maximize), brute_mask(values, maximize))


def test_duplicates_are_both_kept_and_a_tie_is_not_domination():
    values = np.array([[0.5, 100.0], [0.5, 100.0], [0.5, 120.0], [0.7, 120.0]])
    # (0.5, 120) is dominated by (0.5, 100): equal metric, better reconstruction.
    assert pareto_mask(values, [True, False]).tolist() == [True, True, False, True]


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_matches_inclusion_exclusion(m):
    rng = np.random.default_rng(10 + m)
    for _ in range(20):
        n = int(rng.integers(1, 9))
        values = rng.random((n, m))
        maximize = list(rng.integers(0, 2, size=m).astype(bool))
        ref = np.where(maximize, 0.1, 0.9)
        expected = brute_hv(values, ref, maximize)
        assert hypervolume(values, ref, maximize) == pytest.approx(expected, abs=1e-12)


def test_hypervolume_known_cases():
    # metric ↑, recon ↓ with reference (metric 0, recon 200)
    pts = np.array([[0.5, 100.0], [0.8, 150.0]])
    # union of [0,0.5]×[100,200] and [0,0.8]×[150,200]: 50 + 40 − 25 = 65
    assert hypervolume(pts, [0.0, 200.0], [True, False]) == pytest.approx(65.0)
    assert hypervolume(pts[:1], [0.0, 200.0], [True, False]) == pytest.approx(50.0)
    # a point on or beyond the reference adds nothing
    assert hypervolume(np.array([[0.0, 100.0]]), [0.0, 200.0], [True, False]) == 0.0
    assert hypervolume(np.zeros((0, 2)), [0.0, 200.0], [True, False]) == 0.0
    cube = hypervolume(np.array([[0.0, 0.0, 0.0]]), [1.0, 2.0, 3.0], [False] * 3)
    assert cube == pytest.approx(6.0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="2-D"):
        pareto_mask(np.zeros(3), [True])
    with pytest.raises(ValueError, match="maximize has 1 entries for 2 objectives"):
        pareto_mask(np.zeros((2, 2)), [True])
    with pytest.raises(ValueError, match="finite"):
        pareto_mask(np.array([[np.nan, 1.0]]), [True, False])
    with pytest.raises(ValueError, match="reference has 1 entries"):
        hypervolume(np.zeros((1, 2)), [1.0], [False, False])
