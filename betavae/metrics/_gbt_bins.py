"""Binning for ``betavae.metrics.gbt``: each feature cut once into atoms and quantile bins.

scikit-learn's trees never split between values closer than 1e-7; such runs of values are
*atoms* here, and bins are runs of atoms holding about ``n / max_bins`` samples each. Samples
are routed by atom rank, histograms are taken over bins, and the sorted order of each feature is
kept for the exact search inside bins (``_gbt_split.refine``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

# scikit-learn's trees treat feature values closer than this as equal (no split between them).
_FEATURE_THRESHOLD = 1e-7
# Longest window the exact search scans, in average bins (a window spans one or two bins).
_REFINE_WINDOW_BINS = 4


@dataclass(frozen=True)
class Bins:
    """The training features cut into quantile bins, once per fit (B bins, d features).

    Values within ``_FEATURE_THRESHOLD`` of their neighbour form one *atom* (sklearn never
    splits inside one); bins are runs of atoms. Samples are routed down the trees by atom rank,
    so that a split is an integer comparison ``rank > j`` (see ``Splits``).

    Attributes:
        codes: ``[n, d]`` uint8 bin of each sample's value.
        ranks: ``[n, 2d]`` int32 atom rank of each sample's value, then its negation.
        lower: ``[d, B]`` smallest training value in each bin (+inf past a feature's last bin).
        upper: ``[d, B]`` largest training value in each bin (+inf past a feature's last bin).
        last_atom: ``[d, B]`` int64 rank of the last atom of each bin.
        onehot: ``[B·d, n]`` CSC matrix, 1 where sample ``i`` is in bin ``b`` of feature ``f``
            (row ``b·d + f``): ``onehot @ G`` ``[n, m]`` is the ``[B, d, m]`` histogram of G.
        count_cum: ``[B, d, 1]`` samples in bins ``≤ b`` (the root's count prefix sums).
        root_inverse: ``[B, d, 1]`` ``1 / pairs`` of the root's candidate splits.
        big: power of two above twice any bin's count, to carry counts beside gradient sums.
        order: ``[d, n]`` samples sorted by value (then index) per feature.
        sorted_rank: ``[d, n]`` int32 atom rank at each sorted position.
        sorted_bin_end: ``[d, n]`` int32 rank of the last atom of the bin of each position.
        sorted_value: ``[d, n]`` value at each sorted position.
        bin_start: ``[d, B + 1]`` first sorted position of each bin (n past the last bin).
        window: most sorted positions a refinement window scans (see ``refine``).
    """

    codes: np.ndarray
    ranks: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    last_atom: np.ndarray
    onehot: scipy.sparse.csc_matrix
    count_cum: np.ndarray
    root_inverse: np.ndarray
    big: float
    order: np.ndarray
    sorted_rank: np.ndarray
    sorted_bin_end: np.ndarray
    sorted_value: np.ndarray
    bin_start: np.ndarray
    window: int


def _feature_bins(
    x: np.ndarray, max_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Atoms and bins of one feature ``x`` ``[n]``.

    Returns ``atom_lower``, ``atom_upper`` (smallest and largest value of each atom, ascending)
    and ``first``, ``last`` (the first and last atom of each of the ``≤ max_bins`` bins, which
    hold about ``n / max_bins`` samples each).
    """
    values, counts = np.unique(x.astype(np.float64), return_counts=True)
    new_atom = np.ones(values.size, dtype=bool)
    new_atom[1:] = values[1:] > values[:-1] + _FEATURE_THRESHOLD
    start = np.flatnonzero(new_atom)
    atom_upper = values[np.append(start[1:], values.size) - 1]
    n_atoms = start.size
    last = np.arange(n_atoms)
    if n_atoms > max_bins:
        # Close a bin at the atom where the cumulative count first reaches each quantile.
        cum = np.cumsum(np.add.reduceat(counts, start))
        last = np.unique(np.searchsorted(cum, cum[-1] * np.arange(1, max_bins) / max_bins))
        last = np.append(last[last < n_atoms - 1], n_atoms - 1)
    first = np.concatenate([[0], last[:-1] + 1])
    return values[start], atom_upper, first, last


def pairs(n_cum: np.ndarray, n_total: np.ndarray) -> np.ndarray:
    """``N_L·N_R`` of each candidate split, or 0.5 where a side is empty.

    With an empty side the split's ``diff`` is rounding noise (≲ 1e-12), so its improvement
    stays far below the ε every split must beat (see ``best_splits``): no mask is needed.
    """
    pairs = n_total - n_cum
    pairs *= n_cum
    return np.maximum(pairs, 0.5, out=pairs)


def bin_features(X: np.ndarray, max_bins: int) -> Bins:
    """Cut each column of ``X`` ``[n, d]`` into atoms and at most ``max_bins`` quantile bins."""
    n, d = X.shape
    per_feature = [_feature_bins(X[:, f], max_bins) for f in range(d)]
    n_bins = max(first.size for _, _, first, _ in per_feature)
    lower = np.full((d, n_bins), np.inf)
    upper = np.full((d, n_bins), np.inf)
    last_atom = np.full((d, n_bins), np.iinfo(np.int32).max, dtype=np.int64)
    codes = np.empty((n, d), dtype=np.uint8)
    ranks = np.empty((n, 2 * d), dtype=np.int32)
    for f, (atom_lower, atom_upper, first, last) in enumerate(per_feature):
        ranks[:, f] = np.searchsorted(atom_upper, X[:, f], side="left")
        codes[:, f] = np.searchsorted(last, ranks[:, f], side="left")
        lower[f, : first.size] = atom_lower[first]
        upper[f, : last.size] = atom_upper[last]
        last_atom[f, : last.size] = last
    ranks[:, d:] = -ranks[:, :d]
    rows = (codes.astype(np.int64) * d + np.arange(d)).ravel()
    onehot = scipy.sparse.csc_matrix(
        (np.ones(n * d), rows, np.arange(0, n * d + 1, d)), shape=(n_bins * d, n)
    )
    counts = np.bincount(rows, minlength=n_bins * d).reshape(n_bins, d, 1).astype(np.float64)
    count_cum = np.cumsum(counts, axis=0)
    big = 2.0 ** np.ceil(np.log2(2 * counts.max() + 1))  # > 2·|Σg| in any bin (|g| < 1)
    root_inverse = 1.0 / pairs(count_cum, np.float64(n))
    order = np.argsort(ranks[:, :d], axis=0, kind="stable").T  # [d, n]
    sorted_rank = np.take_along_axis(ranks[:, :d].T, order, axis=1)
    sorted_value = np.take_along_axis(X.T.astype(np.float64), order, axis=1)
    bin_start = np.full((d, n_bins + 1), n, dtype=np.intp)
    bin_start[:, :n_bins] = np.concatenate(
        [np.zeros((d, 1), np.intp), count_cum[:-1, :, 0].T.astype(np.intp)], axis=1
    )
    sorted_code = np.take_along_axis(codes.T, order, axis=1)
    sorted_bin_end = np.take_along_axis(last_atom, sorted_code.astype(np.intp), axis=1)
    window = int(np.ceil(_REFINE_WINDOW_BINS * n / max_bins))
    return Bins(
        codes, ranks, lower, upper, last_atom, onehot, count_cum, root_inverse, big,
        order, sorted_rank, sorted_bin_end.astype(np.int32), sorted_value, bin_start, window,
    )  # fmt: skip
